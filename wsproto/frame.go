package wsproto

import (
	"encoding/binary"
	"slices"
	"sync/atomic"

	"github.com/gobwas/ws"
	"github.com/valyala/bytebufferpool"
)

// framePool holds the buffers of server frames.
var framePool bytebufferpool.Pool

// Frame is one complete, encoded, unmasked server frame in a pooled buffer,
// shared by every connection it is sent to: encode once, Retain per extra
// holder, Release when done; the last Release returns the buffer to the pool.
type Frame struct {
	buf  *bytebufferpool.ByteBuffer
	refs atomic.Int32
	z    deflated // the permessage-deflate variant, made on demand (compress.go)
}

// BuildFrame returns a final frame of opcode op (refs=1) with its header
// written, and the payload slice (len payloadLen) to fill in place, so the
// hub can encode a message straight into the frame. The payload slice holds
// stale bytes from the pool: the caller must overwrite all of it.
func BuildFrame(op ws.OpCode, payloadLen int) (*Frame, []byte) {
	bb := framePool.Get()
	size := headerLen(payloadLen) + payloadLen
	bb.B = slices.Grow(bb.B[:0], size)
	bb.B = appendHeader(bb.B, op, payloadLen)
	hdr := len(bb.B)
	bb.B = bb.B[:size]
	f := &Frame{buf: bb}
	f.refs.Store(1)
	return f, bb.B[hdr:]
}

// NewFrame returns a final frame of opcode op (refs=1) holding a copy of payload.
func NewFrame(op ws.OpCode, payload []byte) *Frame {
	f, p := BuildFrame(op, len(payload))
	copy(p, payload)
	return f
}

// NewCloseFrame returns a close frame (refs=1) with code and reason, the
// reason truncated on a UTF-8 boundary so the payload fits 125 bytes. Code 0
// or 1005 (CloseNoStatus, which must never be sent) gives an empty payload.
func NewCloseFrame(code uint16, reason string) *Frame {
	if code == 0 || code == CloseNoStatus {
		return NewFrame(ws.OpClose, nil)
	}
	reason = truncateUTF8(reason, maxControlPayload-2)
	f, p := BuildFrame(ws.OpClose, 2+len(reason))
	binary.BigEndian.PutUint16(p, code)
	copy(p[2:], reason)
	return f
}

// Bytes returns the whole encoded frame (nil once fully released).
func (f *Frame) Bytes() []byte {
	if f.buf == nil {
		return nil
	}
	return f.buf.B
}

// Retain registers one more holder. Only a holder may call it.
func (f *Frame) Retain() {
	if f.refs.Add(1) <= 1 {
		panic("wsproto: Frame retained after its last release")
	}
}

// Release drops one holder; the last one returns the buffer to the pool.
// Releasing more often than retained is a bug that would hand a live buffer
// to another frame, so it panics, like a negative sync.WaitGroup counter.
func (f *Frame) Release() {
	switch r := f.refs.Add(-1); {
	case r == 0:
		bb := f.buf
		f.buf = nil
		framePool.Put(bb)
		f.z.release()
	case r < 0:
		panic("wsproto: Frame released more often than retained")
	}
}

// AppendFrame appends one final, unmasked frame to dst, for one-off replies
// (pong, echo) that are written at once and need no refcount.
func AppendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	dst = appendHeader(dst, op, len(payload))
	return append(dst, payload...)
}

// AppendCloseFrame appends a close frame like NewCloseFrame's to dst.
func AppendCloseFrame(dst []byte, code uint16, reason string) []byte {
	if code == 0 || code == CloseNoStatus {
		return appendHeader(dst, ws.OpClose, 0)
	}
	reason = truncateUTF8(reason, maxControlPayload-2)
	dst = appendHeader(dst, ws.OpClose, 2+len(reason))
	dst = binary.BigEndian.AppendUint16(dst, code)
	return append(dst, reason...)
}

// maxControlPayload is the RFC 6455 §5.5 limit on control frame payloads.
const maxControlPayload = 125

// headerLen is the size of an unmasked header for a payload of n bytes.
func headerLen(n int) int {
	switch {
	case n <= maxControlPayload:
		return 2
	case n <= 0xFFFF:
		return 4
	}
	return 10
}

// appendHeader appends the minimal unmasked header of a final frame.
func appendHeader(dst []byte, op ws.OpCode, n int) []byte {
	dst = append(dst, 0x80|byte(op))
	switch {
	case n <= maxControlPayload:
		return append(dst, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 126)
		return binary.BigEndian.AppendUint16(dst, uint16(n))
	}
	dst = append(dst, 127)
	return binary.BigEndian.AppendUint64(dst, uint64(n))
}

// truncateUTF8 cuts s to at most max bytes without splitting a code point.
func truncateUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut]
}
