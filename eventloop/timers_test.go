package eventloop

import (
	"errors"
	"github.com/wshub/wshub/wsproto/wstest"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
)

func TestPingAnsweredWithSamePayload(t *testing.T) {
	s := startServer(t, Config{}, newTestHandler())
	c := dialWS(t, s, "/ws")
	for _, p := range []string{"", "are you there?", string(make([]byte, 125))} {
		c.Write(wstest.Frame(ws.OpPing, true, true, []byte(p)))
		f := c.NextFrame()
		if f.Header.OpCode != ws.OpPong || string(f.Payload) != p {
			t.Fatalf("pong: %v %q, want payload %q", f.Header.OpCode, f.Payload, p)
		}
	}
}

// A client that answers pings stays; one that does not is closed after the
// pong timeout, having been pinged.
func TestPongTimeout(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newTestHandler()
	s := startServer(t, Config{PingInterval: 100 * time.Millisecond, PongTimeout: 150 * time.Millisecond, Metrics: reg}, h)
	polite := dialWS(t, s, "/ws")
	silent := dialWS(t, s, "/ws")

	silentDone := make(chan error, 1)
	go func() {
		// Read (never answer) until the server closes the connection.
		pinged := false
		for {
			f, err := silent.ReadFrame(3 * time.Second)
			if err != nil {
				var ne net.Error
				switch {
				case errors.As(err, &ne) && ne.Timeout():
					silentDone <- errors.New("silent client was not closed")
				case !pinged:
					silentDone <- errors.New("silent client was closed without a ping")
				default:
					silentDone <- nil
				}
				return
			}
			pinged = pinged || f.Header.OpCode == ws.OpPing
		}
	}()

	pings := 0
	for start := time.Now(); time.Since(start) < 700*time.Millisecond; {
		f, err := polite.ReadFrame(time.Second)
		if err != nil {
			t.Fatalf("polite client lost its connection: %v", err)
		}
		if f.Header.OpCode == ws.OpPing {
			pings++
			polite.Write(wstest.Frame(ws.OpPong, true, true, f.Payload))
		}
	}
	if pings < 3 {
		t.Fatalf("polite client saw %d pings in 700ms with a 100ms interval", pings)
	}
	if err := <-silentDone; err != nil {
		t.Fatal(err)
	}
	if v := metricValue(t, reg, "wshub_eventloop_pong_timeouts_total", nil); v != 1 {
		t.Fatalf("pong timeouts metric %v, want 1", v)
	}
	polite.Write(wstest.Frame(ws.OpText, true, true, []byte("alive")))
	if f := polite.NextFrame(); string(f.Payload) != "alive" {
		t.Fatalf("polite client after the silent one was closed: %q", f.Payload)
	}
}

// An upgrade that never completes is closed without a reply.
func TestHandshakeTimeout(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startServer(t, Config{HandshakeTimeout: 200 * time.Millisecond, Metrics: reg}, newTestHandler())
	c := dialRaw(t, s.Addr().String())
	c.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n")) // never finished
	start := time.Now()
	buf := make([]byte, 64)
	c.Conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := c.Conn.Read(buf)
	if err == nil || n > 0 {
		t.Fatalf("expected the connection closed without a reply, got %q %v", buf[:n], err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("an unfinished upgrade was not closed")
	}
	if el := time.Since(start); el < 150*time.Millisecond || el > 2*time.Second {
		t.Fatalf("closed after %v, want about 200ms", el)
	}
	if v := metricValue(t, reg, "wshub_eventloop_handshake_failures_total", map[string]string{"reason": "timeout"}); v != 1 {
		t.Fatalf("timeout failures metric %v, want 1", v)
	}
	eventually(t, time.Second, "Conns()==0", func() bool { return s.Conns() == 0 })
}

// First pings of connections opened together are spread over the second
// half of the interval.
func TestFirstPingsStaggered(t *testing.T) {
	s := &Server{tickDur: 10 * time.Millisecond}
	s.pingTicks = s.ticks(2 * time.Second)
	seen := map[int64]bool{}
	for id := uint64(1); id <= 1000; id++ {
		at := s.firstPing(id)
		if at < s.pingTicks/2 || at > s.pingTicks {
			t.Fatalf("first ping of %d at tick %d, outside [%d,%d]", id, at, s.pingTicks/2, s.pingTicks)
		}
		seen[at] = true
	}
	if len(seen) < 80 {
		t.Fatalf("1000 connections share only %d distinct first-ping ticks of 101", len(seen))
	}
}
