package wsproto

import (
	"bufio"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// Inflating client messages (RFC 7692 §7.2.2), bounded.
//
// The library is github.com/klauspost/compress/flate, on compress/flate's
// API: on our JSON it inflates 1.4 times as fast (16 KiB: 19 us against
// 27.5 us), a pooled reader is Reset with no allocation where compress/
// flate's allocated 9 times per 16 KiB message, it has a fast path for a
// *bufio.Reader source, and it is maintained and fuzzed (and already in
// the module graph, through the Prometheus client).
//
// No connection holds an inflater: client_no_context_takeover is always
// negotiated, so every message is inflated from a fresh state by one taken
// from a sync.Pool (a per-P cache: in effect one per event loop) and put
// back before Next returns. Reset with no dictionary forgets the previous
// message, so a back-reference past a message's start is corrupt data,
// never a read of another client's bytes.
//
// Reset does not forget everything, though: the library keeps its Huffman
// tables across Reset, and a tree with no codes (legal for the distance
// tree of a block of literals only) leaves the previous table in place
// instead of an empty one (huffmanDecoder.init returns early; still so in
// klauspost/compress v1.20.4). A corrupt message that then uses that tree is decoded
// with the table of whatever message the pooled inflater read before,
// another client's, instead of being refused: its outcome (1007, or bytes
// and maybe 1009) would depend on that message, and its output would tell
// the sender something of it. So an inflater reads scrubStream before it
// goes into the pool, and once when it is made: its tables are then always
// scrubStream's, whatever it inflated before: the outcome of every message
// depends on that message alone. Those tables have one code each, so a bit
// pattern outside it is still refused. (Within one message, a block can
// still read an earlier block's table of that message: lenient where zlib
// refuses, but decided by the message alone.) Scrubbing builds three
// tables, 1-2 microseconds, and allocates nothing.
//
// The output is capped at the message limit: inflating stops as soon as it
// passes the limit, so a message costs at most that many output bytes
// whatever its ratio (under twice as many allocated while the buffer grows,
// none once the pool has a buffer that size), and no buffer is ever sized
// from the input or a declared length: the output grows by doubling as it
// is produced, from 4 KiB up to the limit, which it never passes.

// inflateTail ends a message's deflated bytes. RFC 7692 §7.2.2 appends
// 00 00 ff ff, which completes the empty stored block of the sync flush the
// sender removed (§7.2.1); a final empty stored block (01 00 00 ff ff)
// follows, so that a complete message ends the stream with io.EOF and a
// truncated one with io.ErrUnexpectedEOF. A message that ended with a
// BFINAL block of its own (§7.2.3.4) ends before the tail is read.
var inflateTail = [...]byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// scrubStream is a whole DEFLATE stream that inflates to nothing: a
// dynamic block (RFC 1951 §3.2.7) whose trees all have codes, so reading
// it rebuilds every table the decompressor keeps, and as few as allowed:
// the code-length tree has codes for 1 and 18, the literal/length tree only
// end-of-block and the distance tree only distance code 0, each of length
// 1 (the degenerate single code zlib accepts); the block holds just its
// end. A final empty stored block follows.
var scrubStream = [...]byte{
	0x04, 0xc0, 0x81, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x90, 0xff, 0x6b, 0x04, 0x00, 0x00, 0xff, 0xff,
}

// inflateStart is the first output capacity when the pooled buffer has none.
const inflateStart = 4 << 10

// errDeflate is invalid deflated data: 1007, for data that does not fit the
// message (RFC 6455 §7.4.1), as for text that is not UTF-8; the message is
// not a protocol frame error, its frames were well-formed.
var errDeflate = &CloseError{CloseInvalidPayload, "invalid compressed data"}

// inflater is one pooled decompressor with its input.
type inflater struct {
	src   tailReader
	br    *bufio.Reader
	fr    io.ReadCloser // a flate decompressor; implements flate.Resetter
	probe [1]byte       // atEnd's and scrub's reads
}

var inflaters = sync.Pool{New: func() any {
	inf := new(inflater)
	inf.br = bufio.NewReaderSize(&inf.src, 4<<10)
	inf.fr = flate.NewReader(inf.br)
	inf.scrub()
	return inf
}}

// put scrubs inf and returns it to the pool.
func (inf *inflater) put() {
	inf.scrub()
	inflaters.Put(inf)
}

// scrub reads scrubStream, so that no table left from a message survives
// into the next (see above); it also drops the reference to the message.
func (inf *inflater) scrub() {
	inf.src = tailReader{p: scrubStream[:], tail: len(inflateTail)}
	inf.br.Reset(&inf.src)
	if inf.fr.(flate.Resetter).Reset(inf.br, nil) != nil {
		panic("wsproto: cannot reset an inflater")
	}
	if n, err := inf.fr.Read(inf.probe[:]); n != 0 || err != io.EOF {
		panic("wsproto: scrubStream does not inflate to nothing")
	}
}

// tailReader reads p, then inflateTail.
type tailReader struct {
	p    []byte
	tail int // bytes of inflateTail read
}

func (r *tailReader) Read(b []byte) (int, error) {
	if len(r.p) > 0 {
		n := copy(b, r.p)
		r.p = r.p[n:]
		return n, nil
	}
	if r.tail < len(inflateTail) {
		n := copy(b, inflateTail[r.tail:])
		r.tail += n
		return n, nil
	}
	return 0, io.EOF
}

// inflate writes into out[:0] the inflation of the deflated message p and
// returns it: errTooBig as soon as the output passes maxSize bytes (maxSize
// at least 1), errDeflate when p is not a valid deflated message.
func inflate(out, p []byte, maxSize int) ([]byte, error) {
	if len(p) == 0 {
		// Nothing but the tail is a truncated stored block, yet it is what
		// a sender that strips the whole empty block of an empty message
		// sends, and zlib-based receivers read it as "": so do we.
		return out[:0], nil
	}
	inf := inflaters.Get().(*inflater)
	defer inf.put() // which drops p: the pool must not keep the input alive
	inf.src = tailReader{p: p}
	inf.br.Reset(&inf.src)
	if err := inf.fr.(flate.Resetter).Reset(inf.br, nil); err != nil {
		return out, errDeflate
	}
	out = out[:0]
	for {
		if len(out) == maxSize {
			return out, inf.atEnd()
		}
		if len(out) == cap(out) {
			// Exactly the size wanted: append's growth would overshoot
			// the limit.
			grown := make([]byte, len(out), min(max(2*cap(out), inflateStart), maxSize))
			out = grown[:copy(grown, out)]
		}
		n, err := inf.fr.Read(out[len(out):min(cap(out), maxSize)])
		out = out[:len(out)+n]
		switch {
		case err == io.EOF:
			return out, nil
		case err != nil:
			return out, errDeflate
		}
	}
}

// atEnd checks that a message whose output reached the limit ends there:
// one more byte makes it too big. The output buffer never grows past the
// limit for it.
func (inf *inflater) atEnd() error {
	for {
		n, err := inf.fr.Read(inf.probe[:])
		switch {
		case n > 0:
			return errTooBig
		case err == io.EOF:
			return nil
		case err != nil:
			return errDeflate
		}
	}
}
