package eventloop

import (
	"bytes"
	"github.com/wshub/wshub/wsproto/wstest"
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
		{"unmasked frame", wstest.Frame(ws.OpText, true, false, []byte("x")), 1002},
		{"reserved opcode", wstest.Frame(ws.OpCode(0x3), true, true, []byte("x")), 1002},
		{"fragmented control frame", wstest.Frame(ws.OpPing, false, true, []byte("x")), 1002},
		{"oversize control frame", wstest.Frame(ws.OpPing, true, true, bytes.Repeat([]byte("p"), 126)), 1002},
		{"RSV bit without extension", append([]byte{0x80 | 0x40 | byte(ws.OpText)}, wstest.Frame(ws.OpText, true, true, []byte("x"))[1:]...), 1002},
		{"continuation without start", wstest.Frame(ws.OpContinuation, true, true, []byte("x")), 1002},
		{"binary message on /ws", wstest.Frame(ws.OpBinary, true, true, []byte{1, 2, 3}), 1003},
		{"invalid UTF-8", wstest.Frame(ws.OpText, true, true, []byte{'{', 0xff, 0xfe, '}'}), 1007},
		{"invalid UTF-8 across fragments", append(wstest.Frame(ws.OpText, false, true, []byte{'"', 0xe2, 0x82}), wstest.Frame(ws.OpContinuation, true, true, []byte{'('})...), 1007},
		{"oversize message", wstest.Frame(ws.OpText, true, true, big), 1009},
		// Only the header: the limit is enforced before the payload arrives.
		{"oversize header alone", wstest.Frame(ws.OpText, true, true, big)[:8], 1009},
		{"oversize fragmented message", append(wstest.Frame(ws.OpText, false, true, big[:900]), wstest.Frame(ws.OpContinuation, true, true, big[:900])...), 1009},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			closedBefore := h.closed.Load()
			c := dialWS(t, s, "/ws")
			c.Write(tc.in)
			c.ExpectClose(tc.code, false)
			c.ExpectEOF(2 * time.Second)
			c.Conn.Close() // what a client does once the server has shut its side
			eventually(t, 2*time.Second, "OnClose", func() bool { return h.closed.Load() == closedBefore+1 })
		})
	}
	// The server still serves others afterwards.
	c := dialWS(t, s, "/ws")
	c.Write(wstest.Frame(ws.OpText, true, true, []byte("still here")))
	if f := c.NextFrame(); string(f.Payload) != "still here" {
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
		{"with code", wstest.CloseBody(4001, "done"), 4001},
		{"going away", wstest.CloseBody(1001, ""), 1001},
		{"no status", nil, 1000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialWS(t, s, "/ws")
			c.Write(wstest.Frame(ws.OpClose, true, true, tc.body))
			c.ExpectClose(tc.want, false)
			c.ExpectEOF(2 * time.Second)
		})
	}
	// A close with an invalid code is a protocol error.
	c := dialWS(t, s, "/ws")
	c.Write(wstest.Frame(ws.OpClose, true, true, wstest.CloseBody(1005, "")))
	c.ExpectClose(1002, false)
	c.ExpectEOF(2 * time.Second)
}

// A close started by the server (Conn.Close from the handler) comes after
// what was queued; the socket closes as soon as the client answers, or after
// CloseTimeout when it does not.
func TestServerCloseHandshake(t *testing.T) {
	h := newTestHandler()
	h.onText = func(c *Conn, msg []byte) {
		sendText(c, []byte("reply to "+string(msg)))
		c.Close(4000, "bye")
		if sendText(c, []byte("too late")) {
			t.Error("Send succeeded after Close")
		}
	}
	s := startServer(t, Config{CloseTimeout: 300 * time.Millisecond}, h)

	polite := dialWS(t, s, "/ws")
	polite.Write(wstest.Frame(ws.OpText, true, true, []byte("a")))
	if f := polite.NextFrame(); string(f.Payload) != "reply to a" {
		t.Fatalf("queued frame before close: %q", f.Payload)
	}
	start := time.Now()
	polite.ExpectClose(4000, true)
	polite.ExpectEOF(2 * time.Second)
	if el := time.Since(start); el > 250*time.Millisecond {
		t.Fatalf("polite close took %v: the server waited for the timeout", el)
	}

	deaf := dialWS(t, s, "/ws")
	deaf.Write(wstest.Frame(ws.OpText, true, true, []byte("b")))
	start = time.Now()
	deaf.ExpectClose(4000, false)
	deaf.ExpectEOF(3 * time.Second)
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("closed after %v without an answer, want about the 300ms close timeout", el)
	}
	eventually(t, 2*time.Second, "OnClose twice", func() bool { return h.closed.Load() == 2 })
}
