package eventloop

import (
	"bytes"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wshub/wshub/wsproto/wstest"
)

// A large frame that arrives in many small reads is peeked whole once, when
// complete, not again at every read: the bytes presented to the decoder stay
// linear in the frame's size. A text frame is also peeked as it arrives, to
// fail fast on invalid UTF-8, but only each time it has doubled (past the
// first 4 KiB, which are checked at every read): at most once more.
func TestSlowFrameScannedOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		op    ws.OpCode
		bound int // peeked bytes, in frame sizes
	}{{"binary", ws.OpBinary, 2}, {"text", ws.OpText, 3}} {
		t.Run(tc.name, func(t *testing.T) { testSlowFrameScanned(t, tc.op, tc.bound) })
	}
}

func testSlowFrameScanned(t *testing.T, op ws.OpCode, bound int) {
	s := startServer(t, Config{Loops: 1, PingInterval: -1, Echo: true}, newTestHandler())
	c := dialWS(t, s, "/echo") // open once the 101 is in
	l := s.Loops()[0]
	scanned := func() int {
		got := make(chan int, 1)
		l.Post(func() { got <- l.scanned })
		return <-got
	}
	// inbound is what the server has read of the frame so far: all of it
	// stays in gnet's buffer until the frame is complete.
	inbound := func() int {
		got := make(chan int, 1)
		l.Post(func() {
			n := 0
			for _, c := range l.conns {
				n += c.gc.InboundBuffered()
			}
			got <- n
		})
		return <-got
	}
	before := scanned()
	msg := bytes.Repeat([]byte("s"), 60<<10)
	frame := wstest.Frame(op, true, true, msg)
	for sent := 0; sent < len(frame); {
		n := min(1000, len(frame)-sent)
		c.Write(frame[sent : sent+n])
		sent += n
		if sent < len(frame) {
			// The server has read this piece before the next is sent: a
			// read of its own each (or more), never merged with the next.
			eventually(t, 2*time.Second, "the piece to be read", func() bool { return inbound() == sent })
		}
	}
	if f := c.NextFrame(); f.Header.OpCode != op || !bytes.Equal(f.Payload, msg) {
		t.Fatalf("echo: %v with %d bytes", f.Header.OpCode, len(f.Payload))
	}
	got := scanned() - before
	t.Logf("%d bytes peeked for a %d-byte frame", got, len(msg))
	if got > bound*len(msg) {
		t.Fatalf("%d bytes peeked for a %d-byte frame sent in 1000-byte pieces", got, len(msg))
	}
}
