package eventloop

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wshub/wshub/wsproto"
	"github.com/wshub/wshub/wsproto/wstest"
)

// Frames held back while a client's socket was backed up leave as soon as
// the loop next runs (a posted batch, the client's own traffic) once the
// client has read what gnet buffered, not at the next tick: the tick is
// stretched to a minute here.
func TestBacklogRetriedWithoutTick(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, Config{Loops: 1, SendQueue: 1024, MaxPending: 32 << 20, PingInterval: -1}, h,
		func(s *Server) { s.tickDur = time.Minute })
	c := dialSmallBuffer(t, s.Addr().String())
	c.Upgrade("/ws")
	eventually(t, 2*time.Second, "open", func() bool { return h.opened.Load() == 1 })
	l := s.Loops()[0]
	pad := bytes.Repeat([]byte("y"), 16000)

	for round, trigger := range []string{"posted batch", "client ping"} {
		// A burst larger than the socket takes, then frames that find it
		// backed up and wait on the backlog.
		l.Post(func() {
			conn := h.conns(0)[0]
			for i := range 300 {
				f := wsproto.NewFrame(ws.OpText, append([]byte(strconv.Itoa(i)+" "), pad...))
				conn.Send(f)
				f.Release()
			}
		})
		// Wait for the burst's writev, so the next post is a batch of its own.
		eventually(t, 2*time.Second, "the burst written", func() bool { return l.stats.framesWritten.Load() >= uint64(300*(round+1)+5*round) })
		buffered := make(chan int, 1)
		l.Post(func() {
			conn := h.conns(0)[0]
			buffered <- conn.gc.OutboundBuffered() // > 0: the flush puts conn on the backlog
			for i := range 5 {
				sendText(conn, []byte("tail "+strconv.Itoa(i)))
			}
		})
		if n := <-buffered; n == 0 {
			t.Fatalf("round %d: the burst fit in the socket: nothing was backlogged", round)
		}
		for i := range 300 {
			if f := c.NextFrame(); !bytes.HasPrefix(f.Payload, []byte(strconv.Itoa(i)+" ")) {
				t.Fatalf("round %d: frame %d is %.10q", round, i, f.Payload)
			}
		}
		// gnet's buffer is empty now (the client has read all of it).
		switch trigger {
		case "posted batch":
			l.Post(func() {})
		case "client ping":
			c.Write(wstest.Frame(ws.OpPing, true, true, []byte("go")))
		}
		for i := range 5 {
			f, err := c.ReadFrame(2 * time.Second)
			if err == nil && f.Header.OpCode == ws.OpPong {
				f, err = c.ReadFrame(2 * time.Second)
			}
			if err != nil {
				t.Fatalf("after a %s: backlogged frame %d not delivered: %v", trigger, i, err)
			}
			if want := "tail " + strconv.Itoa(i); string(f.Payload) != want {
				t.Fatalf("after a %s: %q, want %q", trigger, f.Payload, want)
			}
		}
	}
}
