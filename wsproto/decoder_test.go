package wsproto

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

func evText(s string) rec { return rec{Kind: EventText, Payload: s} }
func evBin(s string) rec  { return rec{Kind: EventBinary, Payload: s} }
func evPing(s string) rec { return rec{Kind: EventPing, Payload: s} }
func evPong(s string) rec { return rec{Kind: EventPong, Payload: s} }
func evFrag() rec         { return rec{Kind: EventNone} }
func evClose(code uint16, reason string) rec {
	p := ""
	if code != CloseNoStatus {
		p = string(binary.BigEndian.AppendUint16(nil, code)) + reason
	}
	return rec{Kind: EventClose, Payload: p, Code: code, Reason: reason}
}

type decodeCase struct {
	name     string
	input    []byte
	max      int // 0 = DefaultMaxMessage
	compress bool
	events   []rec
	errCode  uint16 // 0 = no error
	leftover int    // bytes left unconsumed at the end (incomplete frame)
}

func decodeCases() []decodeCase {
	big := strings.Repeat("x", 70000)
	return append([]decodeCase{
		{
			name:   "text",
			input:  wire(text("hello")),
			events: []rec{evText("hello")},
		},
		{
			name:   "empty text and binary",
			input:  wire(text(""), bin("")),
			events: []rec{evText(""), evBin("")},
		},
		{
			name:   "binary with any bytes",
			input:  wire(bin("\xff\x00\xfe")),
			events: []rec{evBin("\xff\x00\xfe")},
		},
		{
			name:   "16-bit length",
			input:  wire(text(strings.Repeat("é", 100))),
			events: []rec{evText(strings.Repeat("é", 100))},
		},
		{
			name:   "64-bit length",
			input:  wire(bin(big)),
			max:    70000,
			events: []rec{evBin(big)},
		},
		{
			name:   "non-minimal length encodings are legal",
			input:  wire(frameSpec{fin: true, op: 1, payload: []byte("abc"), lenForm: 126}, frameSpec{fin: true, op: 2, payload: []byte("de"), lenForm: 127}),
			events: []rec{evText("abc"), evBin("de")},
		},
		{
			name:   "message of exactly the limit",
			input:  wire(text("12345")),
			max:    5,
			events: []rec{evText("12345")},
		},
		{
			name:   "ping pong close",
			input:  wire(ping("p1"), pong(""), closeF(1000, "bye")),
			events: []rec{evPing("p1"), evPong(""), evClose(1000, "bye")},
		},
		{
			name:   "close without payload reports 1005",
			input:  wire(closeRaw("")),
			events: []rec{evClose(CloseNoStatus, "")},
		},
		{
			name:   "close codes registered after the RFC and private ones",
			input:  wire(closeF(1012, ""), closeF(1014, ""), closeF(3000, "app"), closeF(4999, "priv")),
			events: []rec{evClose(1012, ""), evClose(1014, ""), evClose(3000, "app"), evClose(4999, "priv")},
		},
		{
			name:   "fragmented text with interleaved control frames",
			input:  wire(frag(1, "Hel"), ping("x"), cont("lo, ", false), pong("y"), closeF(1001, ""), cont("world", true)),
			events: []rec{evFrag(), evPing("x"), evFrag(), evPong("y"), evClose(1001, ""), evText("Hello, world")},
		},
		{
			name:   "fragmented binary then a plain message",
			input:  wire(frag(2, "\xff"), cont("", false), cont("\xfe", true), text("next")),
			events: []rec{evFrag(), evFrag(), evBin("\xff\xfe"), evText("next")},
		},
		{
			name:   "valid code points split across fragments",
			input:  wire(frag(1, "a\xe2"), cont("\x82", false), cont("\xac\xf0\x9f", false), cont("\x98\x80", true)),
			events: []rec{evFrag(), evFrag(), evFrag(), evText("a€😀")},
		},
		{
			name:     "incomplete frame is left for later",
			input:    wire(text("ok"), text("partial"))[:8+3],
			events:   []rec{evText("ok")},
			leftover: 3,
		},
		{
			name:    "unmasked client frame",
			input:   wire(frameSpec{fin: true, op: 1, payload: []byte("hi"), unmasked: true}),
			errCode: 1002,
		},
		{
			name:    "reserved data opcode",
			input:   wire(frameSpec{fin: true, op: 3}),
			errCode: 1002,
		},
		{
			name:    "reserved control opcode",
			input:   wire(frameSpec{fin: true, op: 0xB}),
			errCode: 1002,
		},
		{
			name:    "RSV1 without compression",
			input:   wire(frameSpec{fin: true, op: 1, rsv: 0x40}),
			errCode: 1002,
		},
		{
			name:    "RSV2",
			input:   wire(frameSpec{fin: true, op: 2, rsv: 0x20}),
			errCode: 1002,
		},
		{
			name:    "RSV3 on a ping",
			input:   wire(frameSpec{fin: true, op: 9, rsv: 0x10}),
			errCode: 1002,
		},
		{
			name:    "fragmented ping",
			input:   wire(frameSpec{op: 9, payload: []byte("x")}),
			errCode: 1002,
		},
		{
			name:    "control frame over 125 bytes",
			input:   wire(ping(strings.Repeat("p", 126))),
			errCode: 1002,
		},
		{
			name:    "64-bit length with its top bit set",
			input:   []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1},
			errCode: 1002,
		},
		{
			name:    "oversize frame refused from its header alone",
			input:   []byte{0x82, 0xff, 0, 0, 0, 0, 0x40, 0, 0, 0}, // 1 GiB declared, no mask, no payload
			max:     1024,
			errCode: 1009,
		},
		{
			name:    "oversize 16-bit frame refused before its payload",
			input:   wire(bin(strings.Repeat("z", 2000)))[:4],
			max:     1024,
			errCode: 1009,
		},
		{
			name:    "oversize reassembled message",
			input:   wire(frag(2, strings.Repeat("a", 400)), cont(strings.Repeat("b", 400), false), cont(strings.Repeat("c", 400), true)),
			max:     1000,
			events:  []rec{evFrag(), evFrag()},
			errCode: 1009,
		},
		{
			name:    "invalid UTF-8 in one frame",
			input:   wire(text("ok"), text("bad \xc3\x28")),
			events:  []rec{evText("ok")},
			errCode: 1007,
		},
		{
			name:    "invalid UTF-8 fails at its non-final fragment",
			input:   wire(frag(1, "ab\xff"))[:2+4+3], // the rest of the message never comes
			errCode: 1007,
		},
		{
			name:    "impossible sequence start fails fast (surrogate prefix)",
			input:   wire(frag(1, "x\xed\xa0")),
			errCode: 1007,
		},
		{
			name:    "impossible sequence start fails fast (overlong prefix)",
			input:   wire(frag(1, "\xe0\x80")),
			errCode: 1007,
		},
		{
			name:    "invalid continuation across fragments",
			input:   wire(frag(1, "\xe2"), cont("\x28\xa1", true)),
			events:  []rec{evFrag()},
			errCode: 1007,
		},
		{
			name:    "message ends inside a code point",
			input:   wire(frag(1, "a"), cont("\xe2\x82", true)),
			events:  []rec{evFrag()},
			errCode: 1007,
		},
		{
			name:    "continuation without a message",
			input:   wire(cont("x", true)),
			errCode: 1002,
		},
		{
			name:    "continuation after the message ended",
			input:   wire(frag(1, "a"), cont("b", true), cont("c", true)),
			events:  []rec{evFrag(), evText("ab")},
			errCode: 1002,
		},
		{
			name:    "data frame inside a fragmented message",
			input:   wire(frag(1, "a"), text("b")),
			events:  []rec{evFrag()},
			errCode: 1002,
		},
		{
			name:    "close with 1-byte payload",
			input:   wire(closeRaw("\x03")),
			errCode: 1002,
		},
		{
			name:    "close code below 1000",
			input:   wire(closeF(999, "")),
			errCode: 1002,
		},
		{
			name:    "close code 1004",
			input:   wire(closeF(1004, "")),
			errCode: 1002,
		},
		{
			name:    "close code 1005 on the wire",
			input:   wire(closeF(1005, "")),
			errCode: 1002,
		},
		{
			name:    "close code 1006 on the wire",
			input:   wire(closeF(1006, "")),
			errCode: 1002,
		},
		{
			name:    "close code 1015",
			input:   wire(closeF(1015, "")),
			errCode: 1002,
		},
		{
			name:    "unassigned close code 1016",
			input:   wire(closeF(1016, "")),
			errCode: 1002,
		},
		{
			name:    "unassigned close code 2999",
			input:   wire(closeF(2999, "")),
			errCode: 1002,
		},
		{
			name:    "close code 5000",
			input:   wire(closeF(5000, "")),
			errCode: 1002,
		},
		{
			name:    "close reason not UTF-8",
			input:   wire(closeF(1000, "\xff")),
			errCode: 1007,
		},
		{
			name: "RSV1 marks a compressed message when allowed",
			input: wire(frameSpec{fin: true, op: 1, rsv: 0x40, payload: deflateMsg("\u00e9")}, frameSpec{op: 2, rsv: 0x40, payload: deflateMsg("ab")[:1]},
				cont(string(deflateMsg("ab")[1:]), true), text("plain")),
			compress: true,
			events:   []rec{evZText("\u00e9"), evFrag(), evZBin("ab"), evText("plain")},
		},
		{
			name:     "RSV1 on a continuation even with compression",
			input:    wire(frag(1, "a"), frameSpec{fin: true, op: 0, rsv: 0x40, payload: []byte("b")}),
			compress: true,
			events:   []rec{evFrag()},
			errCode:  1002,
		},
		{
			name:     "RSV1 on a control frame even with compression",
			input:    wire(frameSpec{fin: true, op: 9, rsv: 0x40}),
			compress: true,
			errCode:  1002,
		},
	}, deflateCases()...)
}

// TestDecoder runs every case through every chunking and expects the same
// events each time.
func TestDecoder(t *testing.T) {
	for _, tc := range decodeCases() {
		t.Run(tc.name, func(t *testing.T) {
			want := outcome{events: tc.events, errCode: tc.errCode, leftover: tc.leftover}
			for name, ch := range chunkers() {
				got := decode(tc.input, tc.max, tc.compress, ch, t.Errorf)
				if tc.errCode != 0 {
					got.leftover = 0 // nothing is read after an error
				}
				if !sameOutcome(got, want) {
					t.Errorf("%s:\n got %v err=%d leftover=%d\nwant %v err=%d leftover=%d",
						name, got.events, got.errCode, got.leftover, want.events, want.errCode, want.leftover)
				}
			}
		})
	}
}

func sameOutcome(a, b outcome) bool {
	return slices.Equal(a.events, b.events) && a.errCode == b.errCode && a.leftover == b.leftover
}

// TestDecoderNeedsWholeFrame checks that no prefix of a frame is consumed or
// modified: the socket buffer may be re-presented any number of times.
func TestDecoderNeedsWholeFrame(t *testing.T) {
	frame := wire(text(strings.Repeat("abc", 100)))
	var d Decoder
	d.Init(0)
	for i := 0; i < len(frame); i++ {
		prefix := bytes.Clone(frame[:i])
		ev, n, err := d.Next(prefix)
		if n != 0 || err != nil || ev.Kind != EventNone {
			t.Fatalf("prefix of %d bytes: ev=%v n=%d err=%v", i, ev.Kind, n, err)
		}
		if !bytes.Equal(prefix, frame[:i]) {
			t.Fatalf("prefix of %d bytes was modified", i)
		}
	}
}

// TestDecoderReleasesBuffer checks that the reassembly buffer is held only while
// a fragmented message is in progress, and that Reset drops it mid-message.
func TestDecoderReleasesBuffer(t *testing.T) {
	var d Decoder
	d.Init(0)
	in := wire(frag(1, "ab"), cont("cd", true))
	_, n, _ := d.Next(in)
	if d.msg == nil {
		t.Fatal("no reassembly buffer during a fragmented message")
	}
	ev, m, _ := d.Next(in[n:])
	if string(ev.Payload) != "abcd" || d.msg == nil {
		t.Fatalf("got %q; the buffer must stay valid until the next call", ev.Payload)
	}
	if _, k, _ := d.Next(in[n+m:]); k != 0 || d.msg != nil {
		t.Fatal("buffer still held by an idle decoder")
	}
	d.Next(wire(frag(2, "x")))
	d.Reset()
	if d.msg != nil || d.op != 0 {
		t.Fatal("Reset kept the message in progress")
	}
	// After Reset a continuation is again a protocol error.
	if _, _, err := d.Next(wire(cont("y", true))); err == nil || err.(*CloseError).Code != 1002 {
		t.Fatalf("continuation after Reset: %v", err)
	}
}

func TestDecoderFragmentCap(t *testing.T) {
	var d Decoder
	d.Init(0)
	d.SetMaxFragments(3)
	// Three frames (the first and two continuations) make a message.
	in := wire(frag(1, "a"), cont("", false), cont("b", true))
	var got []byte
	for off := 0; ; {
		ev, n, err := d.Next(in[off:])
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		off += n
		if ev.Kind == EventText {
			got = ev.Payload
		}
	}
	if string(got) != "ab" {
		t.Fatalf("message %q", got)
	}
	// The count starts again with each message; a fourth frame is refused at
	// its header, before any payload is read.
	in = wire(frag(1, "a"), cont("", false), cont("", false))
	for off := 0; off < len(in); {
		_, n, err := d.Next(in[off:])
		if err != nil {
			t.Fatalf("frame within the cap: %v", err)
		}
		off += n
	}
	if d.Held() < 1 {
		t.Fatalf("Held() = %d mid-message, want the buffer holding 1 byte", d.Held())
	}
	if _, _, err := d.Next(wire(cont("c", true))[:2]); err != ErrTooManyFragments {
		t.Fatalf("fourth frame: %v, want ErrTooManyFragments", err)
	}
	if ErrTooManyFragments.Code != CloseTooBig {
		t.Fatalf("code %d, want 1009", ErrTooManyFragments.Code)
	}
	d.Reset()
	if d.Held() != 0 {
		t.Fatalf("Held() = %d after Reset", d.Held())
	}
}

// A message of more than 65,535 frames (Autobahn 9.3.1 and 9.4.1: 4 MiB as
// 65,536 frames of 64 bytes and an empty final one, 65,537 in all) is
// counted exactly: the count used to be 16-bit, which capped the setting at
// 65,535 and so refused that message.
func TestDecoderFragmentCountPast16Bits(t *testing.T) {
	const frames = 1<<16 + 1
	chunk := strings.Repeat("x", 64)
	specs := []frameSpec{frag(2, chunk)}
	for range frames - 2 {
		specs = append(specs, cont(chunk, false))
	}
	specs = append(specs, cont(chunk, true))
	in := wire(specs...)
	run := func(d *Decoder) (delivered int, err error) {
		buf := slices.Clone(in) // Next unmasks in place
		for off := 0; ; {
			ev, n, err := d.Next(buf[off:])
			if err != nil || n == 0 {
				return delivered, err
			}
			off += n
			if ev.Kind == EventBinary {
				delivered = len(ev.Payload)
			}
		}
	}
	var d Decoder
	d.Init(8 << 20)
	d.SetMaxFragments(frames)
	if got, err := run(&d); err != nil || got != frames*64 {
		t.Fatalf("%d frames with a cap of %d: %d bytes delivered, %v", frames, frames, got, err)
	}
	// One frame under the cap's need: refused at the last frame, not wrapped.
	d.Reset()
	d.SetMaxFragments(frames - 1)
	if got, err := run(&d); err != ErrTooManyFragments || got != 0 {
		t.Fatalf("%d frames with a cap of %d: %d bytes, %v; want ErrTooManyFragments", frames, frames-1, got, err)
	}
	// Settings are clamped to the ceiling, which is past 16 bits.
	d.SetMaxFragments(1 << 40)
	if d.maxFrags != MaxFragmentsCeiling || MaxFragmentsCeiling <= 1<<16 {
		t.Fatalf("maxFrags %d, ceiling %d", d.maxFrags, MaxFragmentsCeiling)
	}
}

// The limit is kept in 32 bits: Init clamps a larger one to the ceiling
// rather than letting it wrap (a wrapped limit could be tiny or negative).
func TestDecoderMaxMessageClamped(t *testing.T) {
	var d Decoder
	d.Init(1<<32 + 10) // would wrap to 10 in 32 bits
	if d.max != MaxMessageCeiling {
		t.Fatalf("limit %d, want %d", d.max, MaxMessageCeiling)
	}
	// A 1 MiB frame is within the clamped limit (its header is accepted)...
	hdr := []byte{0x82, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 0, 1, 2, 3, 4}
	if size, err := d.FrameSize(hdr); err != nil || size != len(hdr)+1<<20 {
		t.Fatalf("1 MiB frame: size %d, %v", size, err)
	}
	// ...and one past 2 GiB is over it.
	binary.BigEndian.PutUint64(hdr[2:], MaxMessageCeiling+1)
	if _, err := d.FrameSize(hdr); err == nil || err.(*CloseError).Code != CloseTooBig {
		t.Fatalf("frame of %d bytes: %v, want 1009", uint64(MaxMessageCeiling+1), err)
	}
}

// NextWithin refuses a fragment that would grow the buffer past the room
// given, before copying it; within the room it decodes as Next does.
func TestDecoderNextWithin(t *testing.T) {
	var d Decoder
	d.Init(0)
	if _, _, err := d.NextWithin(wire(frag(1, strings.Repeat("a", 100))), 99); err != ErrNoRoom {
		t.Fatalf("first fragment over the room: %v, want ErrNoRoom", err)
	}
	if ErrNoRoom.Code != ClosePolicy {
		t.Fatalf("ErrNoRoom is %d, want 1008", ErrNoRoom.Code)
	}
	d.Reset()
	in := wire(frag(1, "ab"), cont("cd", true))
	_, n, err := d.NextWithin(in, 2)
	if err != nil {
		t.Fatal(err)
	}
	held := d.Held()
	// A continuation that fits in the buffer's capacity needs no room.
	if ev, _, err := d.NextWithin(in[n:], 0); err != nil || string(ev.Payload) != "abcd" {
		t.Fatalf("continuation within capacity %d: %q %v", held, ev.Payload, err)
	}
	// One past the capacity with no room left is refused.
	d.Reset()
	_, n, _ = d.NextWithin(wire(frag(1, "x")), 1)
	big := wire(cont(strings.Repeat("y", d.Held()), true))
	if _, _, err := d.NextWithin(big, 0); err != ErrNoRoom {
		t.Fatalf("continuation past capacity without room: %v", err)
	}
	// Text messages that need no buffer are untouched by the room.
	d.Reset()
	if ev, _, err := d.NextWithin(wire(text("whole")), 0); err != nil || string(ev.Payload) != "whole" {
		t.Fatalf("unfragmented message with no room: %q %v", ev.Payload, err)
	}
	_ = n
}

func TestDecoderSize(t *testing.T) {
	size := unsafe.Sizeof(Decoder{})
	t.Logf("unsafe.Sizeof(Decoder{}) = %d", size)
	// 24 on 64-bit: a pointer, the 32-bit limit, four flags and opcodes, and
	// two 32-bit fragment counts.
	if limit := 3 * unsafe.Sizeof(uintptr(0)); size > limit {
		t.Fatalf("Decoder is %d bytes; it lives in every connection, keep it <= %d", size, limit)
	}
}

func TestDecodeAllocs(t *testing.T) {
	frame := wire(text("hello, world"))
	work := make([]byte, len(frame))
	var d Decoder
	d.Init(0)
	allocs := testing.AllocsPerRun(100, func() {
		buf := work
		copy(buf, frame) // Next unmasked the previous copy in place
		for {
			_, n, err := d.Next(buf)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			buf = buf[n:]
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per unfragmented frame", allocs)
	}
}

func TestValidCloseCode(t *testing.T) {
	valid := map[uint16]bool{}
	for c := 1000; c <= 1003; c++ {
		valid[uint16(c)] = true
	}
	for c := 1007; c <= 1014; c++ {
		valid[uint16(c)] = true
	}
	for c := 3000; c <= 4999; c++ {
		valid[uint16(c)] = true
	}
	for c := 0; c <= 0xFFFF; c++ {
		if got := ValidCloseCode(uint16(c)); got != valid[uint16(c)] {
			t.Errorf("ValidCloseCode(%d) = %v", c, got)
		}
	}
}

// TestFrameSize checks that FrameSize reports a frame's whole size as soon
// as its length is readable, 0 before, and Next's error for a bad header.
func TestFrameSize(t *testing.T) {
	var d Decoder
	d.Init(100 << 10)
	for _, payload := range []int{0, 5, 125, 126, 300, 65535, 65536, 100 << 10} {
		frame := wire(bin(strings.Repeat("b", payload)))
		lenBytes := map[bool]int{true: 2, false: 4}[payload < 126]
		if payload > 65535 {
			lenBytes = 10
		}
		for i := 0; i <= min(len(frame), 16); i++ {
			size, err := d.FrameSize(frame[:i])
			want := 0
			if i >= lenBytes {
				want = len(frame)
			}
			if size != want || err != nil {
				t.Fatalf("payload %d, prefix %d: FrameSize = %d, %v; want %d", payload, i, size, err, want)
			}
		}
	}
	for _, bad := range [][]byte{
		wire(bin(strings.Repeat("b", 100<<10+1)))[:10], // over the limit
		{0x82, 0x05},              // unmasked
		{0x8b, 0x80},              // unknown opcode
		wire(cont("x", true))[:2], // continuation without a message
	} {
		_, _, nextErr := d.Next(bytes.Clone(bad))
		if size, err := d.FrameSize(bad); size != 0 || err == nil || err != nextErr {
			t.Fatalf("% x: FrameSize = %d, %v; want Next's error %v", bad, size, err, nextErr)
		}
	}
}
