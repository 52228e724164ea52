package wsproto

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/klauspost/compress/flate"
	"github.com/valyala/bytebufferpool"
)

// DefaultDeflateLevel is the flate level of outbound messages. klauspost's level 1
// is its fastest real compressor (3-5x on JSON at several hundred MB/s);
// since a publication is compressed once for all its subscribers, the level
// costs per publication, not per delivery, but a 1 MB message still holds
// its loop for the whole compression.
const DefaultDeflateLevel = flate.BestSpeed

// syncFlushTail is what a sync flush ends with (an empty stored block); RFC
// 7692 §7.2.1 has the sender remove it and the receiver put it back.
var syncFlushTail = [4]byte{0x00, 0x00, 0xff, 0xff}

// rsv1 marks a message as compressed (RFC 7692 §6).
const rsv1 = 0x40

// deflatePool holds the buffers of compressed frames, apart from framePool
// so that each pool calibrates to its own sizes.
var deflatePool bytebufferpool.Pool

// deflated is a frame's permessage-deflate variant: made at most once, by
// the first holder that asks (Frame.Deflated), then shared read-only by
// every holder on every loop, like the plain bytes.
type deflated struct {
	once sync.Once
	bb   *bytebufferpool.ByteBuffer // the compressed frame is bb.B[off:]; nil: send the plain one
	off  uint8
}

// Deflated returns f's compressed form for a connection that negotiated
// permessage-deflate, or nil when f goes out plain: a control frame, a
// payload under minSize, or one that deflate would not shrink. The first
// call compresses with d; later calls, from any goroutine, return the same
// bytes after one atomic load. A caller whose call overlaps the first one
// waits for it rather than compressing the message again. Only a holder of
// f may call it, and the bytes are valid while it holds f.
func (f *Frame) Deflated(d *Deflater, minSize int) []byte {
	b := f.buf.B
	if op := ws.OpCode(b[0] & 0x0f); op != ws.OpText && op != ws.OpBinary {
		return nil
	}
	hdr := frameHeaderLen(b)
	if len(b)-hdr < minSize {
		return nil
	}
	z := &f.z
	z.once.Do(func() { z.bb, z.off = d.deflate(b, hdr) })
	if z.bb == nil {
		return nil
	}
	return z.bb.B[z.off:]
}

// release returns the compressed buffer, if any (the frame's last Release).
func (z *deflated) release() {
	if z.bb != nil {
		deflatePool.Put(z.bb)
		z.bb = nil
	}
}

// frameHeaderLen is the header length of an unmasked server frame.
func frameHeaderLen(b []byte) int {
	switch b[1] & 0x7f {
	case 126:
		return 4
	case 127:
		return 10
	}
	return 2
}

// Deflater compresses messages for permessage-deflate with no context
// takeover: each message on its own, from an empty window, so that no
// connection needs a compressor or a window of its own. Its flate.Writer
// (a few hundred KiB) is made on first use. One per event loop: a Deflater
// is not safe for concurrent use, but its stats may be read from anywhere.
type Deflater struct {
	level int
	w     *flate.Writer
	sink  appendWriter
	stats DeflateStats
}

// DeflateStats counts a Deflater's work.
type DeflateStats struct {
	Messages       atomic.Uint64 // messages compressed
	Incompressible atomic.Uint64 // of those, sent plain since deflate did not shrink them
	In, Out        atomic.Uint64 // payload bytes before and after (incompressible ones count their plain size twice)
	Nanos          atomic.Uint64 // time spent compressing
}

// NewDeflater returns a Deflater for a flate level (DefaultDeflateLevel;
// flate.HuffmanOnly to flate.BestCompression).
func NewDeflater(level int) *Deflater { return &Deflater{level: level} }

// Stats returns the Deflater's counters.
func (d *Deflater) Stats() *DeflateStats { return &d.stats }

// maxHeader is the longest server frame header, reserved in front of a
// compressed payload whose length is not known until it is written.
const maxHeader = 10

// deflate compresses the payload of frame (after its hdr-byte header) into a
// pooled buffer and writes the RSV1 frame header right in front of it. It
// returns nil when the result would not be shorter than the payload.
func (d *Deflater) deflate(frame []byte, hdr int) (*bytebufferpool.ByteBuffer, uint8) {
	start := time.Now()
	payload := frame[hdr:]
	bb := deflatePool.Get()
	bb.B = append(bb.B[:0], make([]byte, maxHeader)...)
	d.sink.bb = bb
	if d.w == nil {
		w, err := flate.NewWriter(&d.sink, d.level)
		if err != nil {
			panic("wsproto: " + err.Error()) // only for a level out of range
		}
		d.w = w
	} else {
		d.w.Reset(&d.sink) // no context takeover: forget the last message
	}
	// Writes into a byte slice cannot fail.
	_, _ = d.w.Write(payload)
	_ = d.w.Flush()
	d.sink.bb = nil
	out := bb.B[maxHeader:]
	n := len(out) - len(syncFlushTail)
	d.stats.Messages.Add(1)
	d.stats.In.Add(uint64(len(payload)))
	if n < 0 || [4]byte(out[n:]) != syncFlushTail || n >= len(payload) {
		// Not shorter (random or tiny data): the plain frame serves everyone.
		deflatePool.Put(bb)
		d.stats.Incompressible.Add(1)
		d.stats.Out.Add(uint64(len(payload)))
		d.stats.Nanos.Add(uint64(time.Since(start)))
		return nil, 0
	}
	off := maxHeader - headerLen(n)
	h := appendHeader(bb.B[off:off], ws.OpCode(frame[0]&0x0f), n)
	h[0] |= rsv1
	bb.B = bb.B[:maxHeader+n]
	d.stats.Out.Add(uint64(n))
	d.stats.Nanos.Add(uint64(time.Since(start)))
	return bb, uint8(off)
}

// appendWriter is the io.Writer the flate.Writer keeps between messages: it
// appends to whichever buffer the current message is compressed into.
type appendWriter struct{ bb *bytebufferpool.ByteBuffer }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.bb.B = append(w.bb.B, p...)
	return len(p), nil
}
