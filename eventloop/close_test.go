package eventloop

import (
	"bytes"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

func TestCloseCodesForBadInput(t *testing.T) {
	h := newTestHandler()
	// A long CloseTimeout proves the server ends the connection because of
	// the error (it shuts its side at once, then drains until the peer goes),
	// not because the close wait ran out.
	s := startServer(t, Config{MaxMessage: 1024, CloseTimeout: time.Minute}, h)
	big := bytes.Repeat([]byte("a"), 2000)
	cases := []struct {
		name string
		in   []byte
		code uint16
	}{
		{"unmasked frame", frame(ws.OpText, true, false, []byte("x")), 1002},
		{"reserved opcode", frame(ws.OpCode(0x3), true, true, []byte("x")), 1002},
		{"fragmented control frame", frame(ws.OpPing, false, true, []byte("x")), 1002},
		{"oversize control frame", frame(ws.OpPing, true, true, bytes.Repeat([]byte("p"), 126)), 1002},
		{"RSV bit without extension", append([]byte{0x80 | 0x40 | byte(ws.OpText)}, frame(ws.OpText, true, true, []byte("x"))[1:]...), 1002},
		{"continuation without start", frame(ws.OpContinuation, true, true, []byte("x")), 1002},
		{"binary message on /ws", frame(ws.OpBinary, true, true, []byte{1, 2, 3}), 1003},
		{"invalid UTF-8", frame(ws.OpText, true, true, []byte{'{', 0xff, 0xfe, '}'}), 1007},
		{"invalid UTF-8 across fragments", append(frame(ws.OpText, false, true, []byte{'"', 0xe2, 0x82}), frame(ws.OpContinuation, true, true, []byte{'('})...), 1007},
		{"oversize message", frame(ws.OpText, true, true, big), 1009},
		// Only the header: the limit is enforced before the payload arrives.
		{"oversize header alone", frame(ws.OpText, true, true, big)[:8], 1009},
		{"oversize fragmented message", append(frame(ws.OpText, false, true, big[:900]), frame(ws.OpContinuation, true, true, big[:900])...), 1009},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			closedBefore := h.closed.Load()
			c := dialWS(t, s, "/ws")
			c.write(tc.in)
			c.expectClose(tc.code, false)
			c.expectEOF(2 * time.Second)
			c.c.Close() // what a client does once the server has shut its side
			eventually(t, 2*time.Second, "OnClose", func() bool { return h.closed.Load() == closedBefore+1 })
		})
	}
	// The server still serves others afterwards.
	c := dialWS(t, s, "/ws")
	c.write(frame(ws.OpText, true, true, []byte("still here")))
	if f := c.next(); string(f.Payload) != "still here" {
		t.Fatalf("after bad clients: %q", f.Payload)
	}
}

func TestClientCloseEchoed(t *testing.T) {
	s := startServer(t, Config{CloseTimeout: time.Minute}, newTestHandler())
	cases := []struct {
		name string
		body []byte
		want uint16
	}{
		{"with code", closeBody(4001, "done"), 4001},
		{"going away", closeBody(1001, ""), 1001},
		{"no status", nil, 1000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialWS(t, s, "/ws")
			c.write(frame(ws.OpClose, true, true, tc.body))
			c.expectClose(tc.want, false)
			c.expectEOF(2 * time.Second)
		})
	}
	// A close with an invalid code is a protocol error.
	c := dialWS(t, s, "/ws")
	c.write(frame(ws.OpClose, true, true, closeBody(1005, "")))
	c.expectClose(1002, false)
	c.expectEOF(2 * time.Second)
}

// A close started by the server (Conn.Close from the handler) comes after
// what was queued; the socket closes as soon as the client answers, or after
// CloseTimeout when it does not.
func TestServerCloseHandshake(t *testing.T) {
	h := newTestHandler()
	h.onText = func(c *Conn, msg []byte) {
		c.SendText([]byte("reply to " + string(msg)))
		c.Close(4000, "bye")
		if c.SendText([]byte("too late")) {
			t.Error("Send succeeded after Close")
		}
	}
	s := startServer(t, Config{CloseTimeout: 300 * time.Millisecond}, h)

	polite := dialWS(t, s, "/ws")
	polite.write(frame(ws.OpText, true, true, []byte("a")))
	if f := polite.next(); string(f.Payload) != "reply to a" {
		t.Fatalf("queued frame before close: %q", f.Payload)
	}
	start := time.Now()
	polite.expectClose(4000, true)
	polite.expectEOF(2 * time.Second)
	if el := time.Since(start); el > 250*time.Millisecond {
		t.Fatalf("polite close took %v: the server waited for the timeout", el)
	}

	deaf := dialWS(t, s, "/ws")
	deaf.write(frame(ws.OpText, true, true, []byte("b")))
	start = time.Now()
	deaf.expectClose(4000, false)
	deaf.expectEOF(3 * time.Second)
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("closed after %v without an answer, want about the 300ms close timeout", el)
	}
	eventually(t, 2*time.Second, "OnClose twice", func() bool { return h.closed.Load() == 2 })
}
