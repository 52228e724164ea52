package wsproto

import (
	"github.com/gobwas/ws"
)

// Fail fast on invalid UTF-8 inside a frame that has not fully arrived
// (Autobahn 6.4.3, 6.4.4): a caller that leaves an incomplete frame in its
// input buffer, as the event loop does, hands it to CheckPartial at every
// read, with the count the previous call returned, and closes with the
// error's code (1007) as soon as the text cannot become valid. The decoder
// keeps no state for it: what was validated is the caller's count, and the
// incomplete sequence a previous call stopped before is read again from the
// buffer. Next still validates the whole frame once it is complete.

// PartialText reports whether CheckPartial validates a frame whose first
// header byte is b0: an uncompressed text frame, or a continuation of an
// uncompressed text message. (Compressed text is the inflater's to check.)
func (d *Decoder) PartialText(b0 byte) bool {
	switch ws.OpCode(b0 & 0x0f) {
	case ws.OpText:
		return b0&0x40 == 0
	case ws.OpContinuation:
		return d.op == ws.OpText && !d.compressed
	}
	return false
}

// partialChunk is how much payload CheckPartial unmasks at a time, into a
// buffer on its stack: the input is left as it is, masked, for Next.
const partialChunk = 512

// CheckPartial validates the text of the incomplete frame at the front of
// buf (its header first) as far as it has arrived, from payload offset
// checked, which is 0 for a frame not seen before and otherwise what the
// previous call returned. It returns the payload offset up to which the text
// is now known valid (the start of an incomplete sequence at the end of what
// has arrived, which a later call reads again), or errTextUTF8 (1007) when
// no continuation could make it valid. Each payload byte is unmasked and
// validated about once over all calls, so a frame arriving in many pieces
// costs linear work.
//
// A frame PartialText does not validate, a header not yet readable, or a
// complete frame, is Next's: checked comes back unchanged. So does a header
// the decoder refuses, and Next reports it.
func (d *Decoder) CheckPartial(buf []byte, checked int) (int, error) {
	if len(buf) == 0 || !d.PartialText(buf[0]) {
		return checked, nil
	}
	length, hdr, err := d.header(buf)
	if err != nil || hdr == 0 || len(buf) < hdr || uint64(len(buf)-hdr) >= length {
		return checked, nil
	}
	payload := buf[hdr:]
	key := [4]byte(buf[hdr-4 : hdr])
	var scratch [partialChunk]byte
	pre := 0
	if checked == 0 && ws.OpCode(buf[0]&0x0f) == ws.OpContinuation && d.tail > 0 {
		// The sequence the previous fragment ended in goes first: a code
		// point may straddle fragments.
		pre = copy(scratch[:], d.msg.B[len(d.msg.B)-int(d.tail):])
	}
	for pos := checked; pos < len(payload); pre = 0 {
		n := copy(scratch[pre:], payload[pos:])
		ws.Cipher(scratch[pre:pre+n], key, pos)
		tail, ok := validUTF8Prefix(scratch[:pre+n], false)
		if !ok {
			return checked, errTextUTF8
		}
		if n <= tail {
			break // only an incomplete sequence is left: wait for the rest
		}
		pos += n - tail
		checked = pos
	}
	return checked, nil
}
