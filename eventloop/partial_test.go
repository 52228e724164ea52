package eventloop

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wshub/wshub/wsproto"
	"github.com/wshub/wshub/wsproto/wstest"
)

// echoes checks that c still gets its messages back.
func echoes(t *testing.T, c *client, msg string) {
	t.Helper()
	c.Write(wstest.Frame(ws.OpText, true, true, []byte(msg)))
	if f := c.NextFrame(); string(f.Payload) != msg {
		t.Fatalf("echo %q, want %q", f.Payload, msg)
	}
}

// partialBytes reads the server's count of parked bytes.
func partialBytes(s *Server) int64 { return s.partial.Load() }

// handshakeBytes is how many bytes of unfinished upgrades the loops hold.
func handshakeBytes(s *Server) int {
	n := 0
	for _, l := range s.Loops() {
		if !l.bound() {
			continue
		}
		done := make(chan int)
		l.Post(func() {
			sum := 0
			for _, c := range l.conns {
				if h := c.handshakeBuf(); h != nil {
					sum += len(h.buf)
				}
			}
			done <- sum
		})
		n += <-done
	}
	return n
}

// Connections parking unfinished messages are closed with 1008 once the
// gateway-wide budget is reached; the ones under it, and a canary that
// parks nothing, keep working, and the count comes back to zero.
func TestPartialBudgetClosesTheConnectionOverIt(t *testing.T) {
	reg := prometheus.NewRegistry()
	const msgMax, budget = 1000, 4 << 10
	s := startServer(t, Config{MaxMessage: msgMax, MaxPartialBytes: budget, Metrics: reg}, newTestHandler())
	canary := dialWS(t, s, "/ws")
	part := bytes.Repeat([]byte("p"), 900)
	frame := wstest.Frame(ws.OpText, true, true, bytes.Repeat([]byte("q"), 990))

	// Park fragmented messages (the decoder's buffer) and incomplete frames
	// (gnet's buffer), each charged what its buffer costs (at least 900
	// bytes), until one is refused.
	var parked []*client
	var refused *client
	for i := 0; refused == nil; i++ {
		if i == 8 {
			t.Fatalf("%d connections parked 900 bytes each under a %d budget", i, budget)
		}
		before := partialBytes(s)
		c := dialWS(t, s, "/ws")
		if i%2 == 0 {
			c.Write(wstest.Frame(ws.OpText, false, true, part))
		} else {
			c.Write(frame[:900])
		}
		eventually(t, 2*time.Second, "the input to be counted or refused", func() bool {
			return partialBytes(s) >= before+900 || metricValue(t, reg, "wshub_eventloop_partial_limit_closes_total", nil) > 0
		})
		if partialBytes(s) > before {
			parked = append(parked, c)
		} else {
			refused = c
		}
		if got := partialBytes(s); got > budget {
			t.Fatalf("partial bytes %d over the %d budget", got, budget)
		}
	}
	refused.ExpectClose(wsproto.ClosePolicy, false)
	refused.ExpectEOF(2 * time.Second)
	if len(parked) < 2 {
		t.Fatalf("only %d connections parked before the budget", len(parked))
	}
	if v := metricValue(t, reg, "wshub_eventloop_partial_limit_closes_total", map[string]string{"reason": "partial_budget"}); v != 1 {
		t.Fatalf("partial_budget closes %v, want 1", v)
	}
	echoes(t, canary, "canary")
	// The parked ones finish their messages: nothing is held any more.
	for i, c := range parked {
		want := 901
		if i%2 == 0 {
			c.Write(wstest.Frame(ws.OpContinuation, true, true, []byte("!")))
		} else {
			c.Write(frame[900:])
			want = 990
		}
		if f := c.NextFrame(); len(f.Payload) != want {
			t.Fatalf("parked %d: message of %d bytes, want %d", i, len(f.Payload), want)
		}
	}
	eventually(t, 2*time.Second, "partial bytes back to 0", func() bool { return partialBytes(s) == 0 })
	if v := metricValue(t, reg, "wshub_eventloop_partial_bytes", nil); v != 0 {
		t.Fatalf("partial_bytes gauge %v, want 0", v)
	}
}

// A connection that goes away while parking gives its share back.
func TestPartialBudgetReleasedOnClose(t *testing.T) {
	s := startServer(t, Config{MaxMessage: 1000}, newTestHandler())
	c := dialWS(t, s, "/ws")
	frame := wstest.Frame(ws.OpText, true, true, bytes.Repeat([]byte("q"), 800))
	c.Write(frame[:500])
	eventually(t, 2*time.Second, "incomplete frame counted", func() bool { return partialBytes(s) >= 500 })
	c.Conn.Close()
	eventually(t, 2*time.Second, "share given back", func() bool { return partialBytes(s) == 0 })
}

func TestTooManyFragmentsCloses1009(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startServer(t, Config{MaxFragments: 4, Metrics: reg}, newTestHandler())
	ok := dialWS(t, s, "/ws")
	// Exactly the cap is fine: first frame and three continuations.
	ok.Write(wstest.Frame(ws.OpText, false, true, []byte("a")))
	ok.Write(wstest.Frame(ws.OpContinuation, false, true, nil))
	ok.Write(wstest.Frame(ws.OpContinuation, false, true, []byte("b")))
	ok.Write(wstest.Frame(ws.OpContinuation, true, true, []byte("c")))
	if f := ok.NextFrame(); string(f.Payload) != "abc" {
		t.Fatalf("echo %q", f.Payload)
	}
	bad := dialWS(t, s, "/ws")
	bad.Write(wstest.Frame(ws.OpText, false, true, []byte("a")))
	for range 4 {
		bad.Write(wstest.Frame(ws.OpContinuation, false, true, nil))
	}
	bad.ExpectClose(wsproto.CloseTooBig, false)
	if v := metricValue(t, reg, "wshub_eventloop_partial_limit_closes_total", map[string]string{"reason": "fragments"}); v != 1 {
		t.Fatalf("fragments closes %v, want 1", v)
	}
	echoes(t, ok, "still here")
}

// A message that never finishes is closed at its deadline, whether it waits
// as fragments or as an incomplete frame; a connection that keeps completing
// its messages is not.
func TestUnfinishedMessageClosedAtDeadline(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startServer(t, Config{MessageTimeout: 300 * time.Millisecond, PingInterval: -1, Metrics: reg}, newTestHandler())
	frag := dialWS(t, s, "/ws")
	frag.Write(wstest.Frame(ws.OpText, false, true, []byte("never ends")))
	half := dialWS(t, s, "/ws")
	frame := wstest.Frame(ws.OpText, true, true, bytes.Repeat([]byte("h"), 2000))
	half.Write(frame[:1000])
	busy := dialWS(t, s, "/ws")

	start := time.Now()
	frag.ExpectClose(wsproto.ClosePolicy, false)
	half.ExpectClose(wsproto.ClosePolicy, false)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %v, deadline 300ms", d)
	}
	// busy sent its messages in one piece each: it never held anything.
	echoes(t, busy, "fine")
	if v := metricValue(t, reg, "wshub_eventloop_partial_limit_closes_total", map[string]string{"reason": "message_timeout"}); v != 2 {
		t.Fatalf("message_timeout closes %v, want 2", v)
	}
}

// A connection whose every read ends inside its next message, but which keeps
// completing messages, is within the deadline: it is measured from the start
// of the message still unfinished, not from the first byte ever parked.
func TestDeadlineRestartsWithEachCompletedMessage(t *testing.T) {
	s := startServer(t, Config{MessageTimeout: 400 * time.Millisecond, PingInterval: -1}, newTestHandler())
	c := dialWS(t, s, "/ws")
	msg := []byte(strings.Repeat("m", 300))
	frame := wstest.Frame(ws.OpText, true, true, msg)
	// Each write completes the previous message's frame and starts the next.
	c.Write(frame[:100])
	for i := range 12 {
		c.Write(append(append([]byte{}, frame[100:]...), frame[:100]...))
		if f := c.NextFrame(); string(f.Payload) != string(msg) {
			t.Fatalf("message %d: echo of %d bytes", i, len(f.Payload))
		}
		// The server holds the next message's start (the deadline runs)...
		eventually(t, 2*time.Second, "the next message's start to be held", func() bool { return partialBytes(s) >= 100 })
		// ...while real time passes: 1.2 s in all, three deadlines.
		time.Sleep(100 * time.Millisecond)
	}
	c.Write(frame[100:])
	if f := c.NextFrame(); string(f.Payload) != string(msg) {
		t.Fatalf("last echo of %d bytes", len(f.Payload))
	}
}

// An upgrade trickled in many reads is parsed as it comes (its bytes leave
// gnet's buffer) and the connection works afterwards, frames sent in the
// same write as the request's end included.
func TestTrickledUpgrade(t *testing.T) {
	s := startServer(t, Config{}, newTestHandler())
	c := dialRaw(t, s.Addr().String())
	req := wstest.UpgradeRequest(s.Addr().String(), "/ws", "Cookie: "+strings.Repeat("c", 2000))
	first := wstest.Frame(ws.OpText, true, true, []byte("first"))
	for i := 0; i < len(req)-1; i += 97 {
		end := min(i+97, len(req)-1)
		c.Write([]byte(req[i:end]))
		// Moved into the handshake buffer: the server read it, so each
		// piece is a read of its own.
		eventually(t, 2*time.Second, "the piece to be read", func() bool { return handshakeBytes(s) == end })
	}
	c.Write(append([]byte(req[len(req)-1:]), first...))
	if resp := c.ReadResponse(); resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if f := c.NextFrame(); string(f.Payload) != "first" {
		t.Fatalf("echo %q", f.Payload)
	}
	eventually(t, 2*time.Second, "nothing parked", func() bool { return partialBytes(s) == 0 })
}

// Near the memory limit upgrades get 503 and are counted; this process is
// far above a 1 MiB limit.
func TestMemoryLimitRefusesUpgrades(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startServer(t, Config{MemoryLimit: 1 << 20, Metrics: reg}, newTestHandler())
	eventually(t, 3*time.Second, "the guard to sample", func() bool { return s.memory.overloaded.Load() })
	c := dialRaw(t, s.Addr().String())
	c.Write([]byte(wstest.UpgradeRequest(s.Addr().String(), "/ws")))
	c.ExpectRejected(http.StatusServiceUnavailable)
	if v := metricValue(t, reg, "wshub_eventloop_refused_connections_total", map[string]string{"reason": "memory"}); v != 1 {
		t.Fatalf("memory refusals %v, want 1", v)
	}
}
