package wsproto

import (
	"encoding/binary"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/valyala/bytebufferpool"
)

// DefaultMaxMessage is the message size limit used when Init gets 0, and
// MaxMessageCeiling the largest limit Init takes (larger ones are clamped):
// the decoder keeps its limit in 32 bits, to stay small.
const (
	DefaultMaxMessage = 64 << 10
	MaxMessageCeiling = math.MaxInt32
)

// DefaultMaxFragments is the cap on one message's frames set by Init, and
// MaxFragmentsCeiling the largest cap SetMaxFragments takes. Without a cap a
// client could send a message as endless empty continuation frames. The
// ceiling lets a 16 MiB message come in 16-byte frames (Autobahn 9.3.1 and
// 9.4.1 send 4 MiB as 65,537 frames: 65,536 of 64 bytes and an empty last).
const (
	DefaultMaxFragments = 1024
	MaxFragmentsCeiling = 1 << 20
)

// EventKind says what Decoder.Next produced.
type EventKind uint8

// Event kinds.
const (
	EventNone   EventKind = iota // a non-final fragment was absorbed; nothing to deliver yet
	EventText                    // a complete, UTF-8 valid text message
	EventBinary                  // a complete binary message
	EventPing
	EventPong
	EventClose
)

// Event is one decoded message or control frame.
type Event struct {
	Kind EventKind
	// Payload is the complete message or control payload (for EventClose the
	// raw close payload, code included, ready to echo). It is valid until the
	// next Next call or until the caller discards the input bytes.
	Payload []byte
	// CloseCode is the peer's code for EventClose (1005 when the close had no
	// payload).
	CloseCode uint16
	// CloseReason is the peer's UTF-8 reason for EventClose (aliases the input).
	CloseReason []byte
	// Compressed is set on a data message whose first frame had RSV1 while
	// compression is allowed (AllowCompressed): it came deflated, and
	// Payload is what it inflated to (within the message limit, and UTF-8
	// valid for text, like any message).
	Compressed bool
}

// CloseError is a protocol violation by the peer: close the connection with
// Code (1002, 1007, 1009). Reason is a short text suitable for the close frame.
type CloseError struct {
	Code   uint16
	Reason string
}

func (e *CloseError) Error() string {
	return "websocket: close " + strconv.Itoa(int(e.Code)) + ": " + e.Reason
}

// The errors Next returns; shared so that a failure does not allocate.
var (
	errRSV           = &CloseError{CloseProtocolError, "reserved bits set"}
	errOpcode        = &CloseError{CloseProtocolError, "unknown opcode"}
	errUnmasked      = &CloseError{CloseProtocolError, "unmasked client frame"}
	errControlFrag   = &CloseError{CloseProtocolError, "fragmented control frame"}
	errControlLen    = &CloseError{CloseProtocolError, "control frame over 125 bytes"}
	errLength64      = &CloseError{CloseProtocolError, "frame length top bit set"}
	errContinuation  = &CloseError{CloseProtocolError, "continuation without a message"}
	errInterleaved   = &CloseError{CloseProtocolError, "new message inside a fragmented one"}
	errCloseLen      = &CloseError{CloseProtocolError, "close payload of 1 byte"}
	errCloseCode     = &CloseError{CloseProtocolError, "invalid close code"}
	errTooBig        = &CloseError{CloseTooBig, "message too big"}
	errTextUTF8      = &CloseError{CloseInvalidPayload, "invalid UTF-8 in text"}
	errCloseUTF8     = &CloseError{CloseInvalidPayload, "invalid UTF-8 in close reason"}
	errRSVCompressed = &CloseError{CloseProtocolError, "RSV1 outside a message's first frame"}
	// ErrTooManyFragments is returned for a message of more frames than the
	// cap (SetMaxFragments): 1009, like a message over the size limit.
	ErrTooManyFragments = &CloseError{CloseTooBig, "too many fragments"}
	// ErrNoRoom is returned by NextWithin when a fragment would grow the
	// reassembly buffer by more than the room given: 1008.
	ErrNoRoom = &CloseError{ClosePolicy, "partial-message budget exhausted"}
)

// msgPool holds reassembly buffers of fragmented messages, apart from the
// frame pool: its size calibration sees client messages only. inflatedPool
// holds the buffers compressed messages inflate into, whose sizes are
// another distribution: a pool keeps only buffers up to the 95th
// percentile of what it saw, so sharing one would drop the larger kind.
var msgPool, inflatedPool bytebufferpool.Pool

// Decoder decodes client frames from the front of a byte slice. It lives in
// every connection, so it is kept small (24 bytes on 64-bit: the limit is
// 32-bit to leave room for a 32-bit fragment count) and holds a heap buffer
// only while a fragmented message is being reassembled, and from delivering
// a reassembled or inflated message to the next call. It holds no inflater:
// one is borrowed from a pool for each compressed message.
// The zero value is unusable: call Init.
type Decoder struct {
	msg        *bytebufferpool.ByteBuffer // reassembly (or delivered inflated) buffer, nil when none is held
	max        int32                      // message size limit, at most MaxMessageCeiling
	op         ws.OpCode                  // opcode of the fragmented message in progress, 0 = none
	tail       uint8                      // bytes at the end of msg that start an incomplete UTF-8 sequence
	compress   bool                       // RSV1 allowed on a message's first frame (permessage-deflate)
	compressed bool                       // the message in progress had RSV1; with op == 0, msg is an inflated message (from inflatedPool)
	frags      uint32                     // frames of the message in progress
	maxFrags   uint32                     // cap on frags, at most MaxFragmentsCeiling
}

// Init prepares the decoder; maxMessage caps a message after reassembly and
// therefore a single frame too (DefaultMaxMessage when <= 0, clamped to
// MaxMessageCeiling).
func (d *Decoder) Init(maxMessage int) {
	d.Reset()
	if maxMessage <= 0 {
		maxMessage = DefaultMaxMessage
	}
	d.max = int32(min(maxMessage, MaxMessageCeiling))
	d.maxFrags = DefaultMaxFragments
	d.compress = false
}

// SetMaxFragments caps the frames of one message, the first included
// (between 1 and MaxFragmentsCeiling; other values are clamped).
func (d *Decoder) SetMaxFragments(n int) { d.maxFrags = uint32(min(max(n, 1), MaxFragmentsCeiling)) }

// Held is the size of the decoder's reassembly buffer (its capacity, what
// it costs in memory): held for a fragmented message in progress, or one
// just delivered (reassembled or inflated) until the Next call after it
// returns the buffer (0 for an idle connection).
func (d *Decoder) Held() int {
	if d.msg == nil {
		return 0
	}
	return cap(d.msg.B)
}

// AllowCompressed is set for a connection that negotiated permessage-deflate
// (Handshake.Deflate): RSV1 is then accepted on the first frame of a data
// message, which is inflated before it is delivered (deflate.go), and
// reported as Event.Compressed. The message limit applies to the inflated
// size: inflating stops as soon as it passes the limit (1009). Invalid
// deflated data is 1007. RSV1 anywhere else is 1002 (RFC 7692 §6).
func (d *Decoder) AllowCompressed(on bool) { d.compress = on }

// Reset drops any message in progress and returns pooled buffers (connection
// closed). The limit and compression setting are kept.
func (d *Decoder) Reset() {
	d.release()
	d.op, d.tail, d.compressed, d.frags = 0, 0, false, 0
}

func (d *Decoder) release() {
	if d.msg == nil {
		return
	}
	if d.op == 0 && d.compressed {
		inflatedPool.Put(d.msg)
		d.compressed = false
	} else {
		msgPool.Put(d.msg)
	}
	d.msg = nil
}

// Next decodes at most one frame from the front of buf, unmasking it in place.
//
// n == 0 && err == nil: need more bytes (nothing consumed). n > 0: that many
// bytes were one whole frame; ev.Kind == EventNone for a non-final fragment.
// err != nil (always a *CloseError): stop reading and close with its Code; the
// decoder is then only good for Reset.
//
// Call Next until it returns n == 0, even when all input was consumed (an
// empty buf is fine): a reassembled message stays in a pooled buffer until the
// following call, and that call returns it, so an idle connection holds none.
//
// Every check that the first bytes allow is made before waiting for the
// payload; in particular the length is checked against the limit as soon as
// it is readable, and nothing is ever allocated on a declared length: a
// fragment is copied into the reassembly buffer only once it has arrived.
func (d *Decoder) Next(buf []byte) (ev Event, n int, err error) {
	return d.NextWithin(buf, math.MaxInt)
}

// NextWithin is Next for a caller that budgets memory: a fragment that would
// grow the reassembly buffer by more than room bytes is refused with
// ErrNoRoom before it is copied, so a refused message costs no memory. The
// buffer a compressed message inflates into is not charged: like a
// reassembled message's, it is given back by the following call.
func (d *Decoder) NextWithin(buf []byte, room int) (ev Event, n int, err error) {
	if d.msg != nil && d.op == 0 {
		// The previous call delivered the reassembled message; its Payload
		// is no longer valid, so an idle connection holds no buffer.
		d.release()
	}
	length, hdr, err := d.header(buf)
	if err != nil || hdr == 0 {
		return ev, 0, err
	}
	if len(buf) < hdr || uint64(len(buf)-hdr) < length {
		return ev, 0, nil
	}
	op := ws.OpCode(buf[0] & 0x0f)
	fin := buf[0]&0x80 != 0
	n = hdr + int(length)
	payload := buf[hdr:n]
	ws.Cipher(payload, [4]byte(buf[hdr-4:hdr]), 0)

	switch op {
	case ws.OpPing:
		ev.Kind, ev.Payload = EventPing, payload
	case ws.OpPong:
		ev.Kind, ev.Payload = EventPong, payload
	case ws.OpClose:
		if err := parseClose(payload, &ev); err != nil {
			return ev, 0, err
		}
	case ws.OpContinuation:
		if err := d.appendFragment(payload, fin, room, &ev); err != nil {
			return Event{}, 0, err
		}
	default: // text or binary opening a message
		compressed := buf[0]&0x40 != 0
		if fin {
			if compressed {
				if err := d.deliverInflated(op, payload, &ev); err != nil {
					return Event{}, 0, err
				}
				return ev, n, nil
			}
			if op == ws.OpText && !utf8.Valid(payload) {
				return ev, 0, errTextUTF8
			}
			ev.Kind, ev.Payload = kindOf(op), payload
			return ev, n, nil
		}
		if len(payload) > room {
			return Event{}, 0, ErrNoRoom
		}
		d.op, d.compressed, d.tail, d.frags = op, compressed, 0, 0
		d.msg = msgPool.Get()
		// A pooled buffer's own capacity costs nothing new.
		if err := d.appendFragment(payload, false, room+min(cap(d.msg.B), math.MaxInt-room), &ev); err != nil {
			return Event{}, 0, err
		}
	}
	return ev, n, nil
}

// FrameSize is the whole size (header, mask key, payload) of the frame at
// the front of buf, so that a caller can wait for that many bytes before
// calling Next again; 0 while buf is too short to hold the length. It makes
// the same header checks as Next and returns the same error, so a size it
// returns is within the message limit.
func (d *Decoder) FrameSize(buf []byte) (int, error) {
	length, hdr, err := d.header(buf)
	if err != nil || hdr == 0 {
		return 0, err
	}
	return hdr + int(length), nil
}

// header checks the frame header at the front of buf and returns the
// payload length and the header's size, mask key included (hdr == 0: the
// length is not readable yet).
func (d *Decoder) header(buf []byte) (length uint64, hdr int, err error) {
	if len(buf) < 2 {
		return 0, 0, nil
	}
	if err := d.checkHeader(buf[0], buf[1]); err != nil {
		return 0, 0, err
	}
	op := ws.OpCode(buf[0] & 0x0f)
	length, hdr = uint64(buf[1]&0x7f), 2
	switch length {
	case 126:
		if len(buf) < 4 {
			return 0, 0, nil
		}
		length, hdr = uint64(binary.BigEndian.Uint16(buf[2:])), 4
	case 127:
		if len(buf) < 10 {
			return 0, 0, nil
		}
		length, hdr = binary.BigEndian.Uint64(buf[2:]), 10
		if length>>63 != 0 {
			return 0, 0, errLength64
		}
	}
	if !op.IsControl() {
		// Non-minimal length encodings are legal (RFC 6455 §5.2 only says
		// "minimal number of bytes MUST be used" for the sender), so accept.
		held := uint64(0)
		if op == ws.OpContinuation {
			held = uint64(len(d.msg.B))
		}
		if length > uint64(d.max) || held+length > uint64(d.max) {
			return 0, 0, errTooBig
		}
	}
	return length, hdr + 4, nil // + mask key
}

// checkHeader makes every check the first two header bytes allow.
func (d *Decoder) checkHeader(b0, b1 byte) error {
	op := ws.OpCode(b0 & 0x0f)
	rsv := b0 & 0x70
	switch op {
	case ws.OpContinuation, ws.OpText, ws.OpBinary, ws.OpClose, ws.OpPing, ws.OpPong:
	default:
		return errOpcode
	}
	switch {
	case rsv&^0x40 != 0 || rsv != 0 && !d.compress:
		return errRSV
	case op.IsControl() && b0&0x80 == 0:
		return errControlFrag
	case op.IsControl() && b1&0x7f > 125:
		return errControlLen
	case op == ws.OpContinuation && d.op == 0:
		return errContinuation
	case op != ws.OpContinuation && !op.IsControl() && d.op != 0:
		return errInterleaved
	case op == ws.OpContinuation && d.frags >= d.maxFrags:
		return ErrTooManyFragments
	case rsv != 0 && (op.IsControl() || op == ws.OpContinuation):
		// RFC 7692 §6: RSV1 marks a whole message, set on its first frame only.
		return errRSVCompressed
	case b1&0x80 == 0:
		return errUnmasked
	}
	return nil
}

// appendFragment adds one fragment's payload to the message in progress,
// validating text as it goes, and delivers the message on the final fragment.
func (d *Decoder) appendFragment(payload []byte, fin bool, room int, ev *Event) error {
	if grow := len(d.msg.B) + len(payload) - cap(d.msg.B); grow > 0 && grow > room {
		return ErrNoRoom
	}
	d.frags++
	d.msg.B = append(d.msg.B, payload...)
	if d.op == ws.OpText && !d.compressed {
		// Re-check from the start of the incomplete sequence the previous
		// fragment ended with: a code point may straddle fragments.
		start := len(d.msg.B) - len(payload) - int(d.tail)
		tail, ok := validUTF8Prefix(d.msg.B[start:], fin)
		if !ok {
			return errTextUTF8
		}
		d.tail = uint8(tail)
	}
	if fin {
		op, compressed := d.op, d.compressed
		d.op, d.compressed, d.tail, d.frags = 0, false, 0, 0 // msg is released by the next call
		if compressed {
			return d.deliverInflated(op, d.msg.B, ev)
		}
		ev.Kind, ev.Payload = kindOf(op), d.msg.B
	}
	return nil
}

// deliverInflated inflates p, the deflated payload of a whole message of
// opcode op, into a buffer of inflatedPool that becomes d.msg (in place of
// the deflated reassembly buffer, if any), held until the next call like a
// reassembled message, and fills ev. d.compressed then marks d.msg as
// inflatedPool's.
func (d *Decoder) deliverInflated(op ws.OpCode, p []byte, ev *Event) error {
	out := inflatedPool.Get()
	var err error
	out.B, err = inflate(out.B, p, int(d.max))
	if err == nil && op == ws.OpText && !utf8.Valid(out.B) {
		err = errTextUTF8
	}
	if err != nil {
		inflatedPool.Put(out)
		return err
	}
	d.release()
	d.msg, d.compressed = out, true
	ev.Kind, ev.Payload, ev.Compressed = kindOf(op), out.B, true
	return nil
}

func kindOf(op ws.OpCode) EventKind {
	if op == ws.OpText {
		return EventText
	}
	return EventBinary
}

// parseClose fills ev from a close payload (RFC 6455 §5.5.1, §7.4).
func parseClose(p []byte, ev *Event) error {
	ev.Kind, ev.Payload = EventClose, p // the raw payload, to echo in the reply
	switch len(p) {
	case 0:
		ev.CloseCode = CloseNoStatus
		return nil
	case 1:
		return errCloseLen
	}
	code := binary.BigEndian.Uint16(p)
	if !ValidCloseCode(code) {
		return errCloseCode
	}
	if !utf8.Valid(p[2:]) {
		return errCloseUTF8
	}
	ev.CloseCode, ev.CloseReason = code, p[2:]
	return nil
}
