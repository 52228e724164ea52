package eventloop

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wshub/wshub/wsproto"
	"github.com/wshub/wshub/wsproto/wstest"
)

// partialServer serves /ws and /echo with a message timeout far beyond the
// tests, so that a close can only be the UTF-8 check's.
func partialServer(t *testing.T) *Server {
	return startServer(t, Config{Loops: 1, PingInterval: -1, Echo: true, MessageTimeout: time.Minute}, newTestHandler())
}

// expectQuiet checks that the server sends nothing for a while: the chop so
// far was accepted.
func expectQuiet(t *testing.T, c *client) {
	t.Helper()
	f, err := c.ReadFrame(200 * time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %v %q (%v) while the frame is incomplete and valid so far", f.Header.OpCode, f.Payload, err)
	}
}

// Invalid UTF-8 in the first chop of a large text frame closes the
// connection with 1007 at once, not when the frame is complete (it never
// will be here).
func TestInvalidUTF8InFirstChop(t *testing.T) {
	for _, path := range []string{"/ws", "/echo"} {
		s := partialServer(t)
		c := dialWS(t, s, path)
		msg := bytes.Repeat([]byte("a"), 60<<10)
		copy(msg[1500:], "\xc3\x28") // a lead byte, then no continuation
		frame := wstest.Frame(ws.OpText, true, true, msg)
		c.Write(frame[:2000])
		c.ExpectClose(wsproto.CloseInvalidPayload, true)
		c.ExpectEOF(2 * time.Second)
	}
}

// Text that becomes invalid with a later chop fails with that chop: a valid
// first chop ending mid-rune, then the byte that rules it out (Autobahn
// 6.4.4), in one frame and in the continuation of a fragmented message; and
// past the first 4 KiB, where the check waits for the frame to double.
func TestInvalidUTF8InLaterChop(t *testing.T) {
	kappa := "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5" // κόσμε
	big := string(bytes.Repeat([]byte("b"), 20000))
	for name, tc := range map[string]struct {
		before []byte // complete frames sent first
		frame  []byte // the incomplete frame: chop 1 is up to cut
		cut    int
		more   int // bytes of chop 2
	}{
		"single frame": {
			frame: wstest.Frame(ws.OpText, true, true, []byte(kappa+"\xf4\x90\x80\x80edited")),
			cut:   2 + 4 + len(kappa) + 1, more: 1,
		},
		"continuation": {
			before: wstest.Frame(ws.OpText, false, true, []byte(kappa+"\xe2\x82")),
			frame:  wstest.Frame(ws.OpContinuation, true, true, []byte("\xac ok then \xc0\xafrest")),
			cut:    2 + 4 + 10, more: 2,
		},
		"straddling fragments": {
			before: wstest.Frame(ws.OpText, false, true, []byte(kappa+"\xe2\x82")),
			frame:  wstest.Frame(ws.OpContinuation, true, true, []byte("Arest")),
			cut:    2 + 4, more: 1,
		},
		"past 4 KiB": {
			frame: wstest.Frame(ws.OpText, true, true, []byte(big+"\xff"+big+big)),
			cut:   4 + 4 + 20000, more: 20001, // the frame is 60,001 bytes in: checked again at 40,001
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := partialServer(t)
			c := dialWS(t, s, "/echo")
			c.Write(append(append([]byte(nil), tc.before...), tc.frame[:tc.cut]...))
			expectQuiet(t, c)
			c.Write(tc.frame[tc.cut : tc.cut+tc.more])
			c.ExpectClose(wsproto.CloseInvalidPayload, true)
		})
	}
}

// The incomplete frame at the end of a read that also held whole frames is
// checked in that read too: the whole ones are answered, then 1007.
func TestInvalidUTF8AfterWholeFrames(t *testing.T) {
	s := partialServer(t)
	c := dialWS(t, s, "/ws")
	in := wstest.Frame(ws.OpText, true, true, []byte("first"))
	bad := wstest.Frame(ws.OpText, true, true, append([]byte("ab\xed\xa0\x80"), make([]byte, 5000)...)) // a surrogate
	c.Write(append(in, bad[:20]...))
	if f := c.NextFrame(); f.Header.OpCode != ws.OpText || string(f.Payload) != "first" {
		t.Fatalf("got %v %q, want the echo of the whole frame", f.Header.OpCode, f.Payload)
	}
	c.ExpectClose(wsproto.CloseInvalidPayload, true)
}

// Valid text and any binary arriving in chops are delivered whole; a
// binary frame's bytes are none of the UTF-8 check's business.
func TestPartialFramesDelivered(t *testing.T) {
	s := partialServer(t)
	c := dialWS(t, s, "/echo")
	rune4 := bytes.Repeat([]byte("😀"), 3000) // 12,000 bytes: chops cut runes
	binary := bytes.Repeat([]byte{0xff, 0xc0, 0x80}, 4000)
	for _, m := range []struct {
		op      ws.OpCode
		payload []byte
	}{{ws.OpText, rune4}, {ws.OpBinary, binary}} {
		frame := wstest.Frame(m.op, true, true, m.payload)
		for off := 0; off < len(frame); off += 777 {
			c.Write(frame[off:min(off+777, len(frame))])
			time.Sleep(time.Millisecond) // a read each, mostly
		}
		if f := c.NextFrame(); f.Header.OpCode != m.op || !bytes.Equal(f.Payload, m.payload) {
			t.Fatalf("%v: echo %v with %d bytes", m.op, f.Header.OpCode, len(f.Payload))
		}
	}
}
