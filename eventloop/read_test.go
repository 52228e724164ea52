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
// linear in the frame's size.
func TestSlowFrameScannedOnce(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, Config{Loops: 1, PingInterval: -1}, h)
	c := dialWS(t, s, "/ws")
	eventually(t, 2*time.Second, "open", func() bool { return h.opened.Load() == 1 })
	l := s.Loops()[0]
	scanned := func() int {
		got := make(chan int, 1)
		l.Post(func() { got <- l.scanned })
		return <-got
	}
	before := scanned()
	msg := bytes.Repeat([]byte("s"), 60<<10)
	frame := wstest.Frame(ws.OpText, true, true, msg)
	for len(frame) > 0 {
		n := min(1000, len(frame))
		c.Write(frame[:n])
		frame = frame[n:]
		time.Sleep(500 * time.Microsecond) // one read of the server's each
	}
	if f := c.NextFrame(); f.Header.OpCode != ws.OpText || !bytes.Equal(f.Payload, msg) {
		t.Fatalf("echo: %v with %d bytes", f.Header.OpCode, len(f.Payload))
	}
	got := scanned() - before
	t.Logf("%d bytes peeked for a %d-byte frame", got, len(msg))
	if got > 2*len(msg) {
		t.Fatalf("%d bytes peeked for a %d-byte frame sent in 1000-byte pieces", got, len(msg))
	}
}
