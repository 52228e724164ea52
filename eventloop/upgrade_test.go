package eventloop

import (
	"encoding/binary"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wshub/wshub/wsproto"
	"github.com/wshub/wshub/wsproto/wstest"
)

// gatedHandler refuses upgrades whose query is not "ok" with 401, and gives
// accepted ones the expiry in their query's "exp" (milliseconds from now).
type gatedHandler struct {
	*testHandler
	expired atomic.Int64
	renew   time.Duration // OnExpire moves the expiry by this once, when set
}

func (h *gatedHandler) OnUpgrade(c *Conn, req *wsproto.Handshake) int {
	q := req.Query
	switch {
	case q == "ok":
	case strings.HasPrefix(q, "exp="):
		ms, err := time.ParseDuration(strings.TrimPrefix(q, "exp=") + "ms")
		if err != nil {
			return 400
		}
		c.SetExpiry(time.Now().Add(ms))
	default:
		return 401
	}
	return 0
}

func (h *gatedHandler) OnExpire(c *Conn) {
	if h.expired.Add(1) == 1 && h.renew > 0 {
		c.SetExpiry(time.Now().Add(h.renew))
	}
}

func TestUpgraderRefuses(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := &gatedHandler{testHandler: newTestHandler()}
	s := startServer(t, Config{Addr: "127.0.0.1:0", Loops: 1, Metrics: reg}, h)
	bad := dialRaw(t, s.Addr().String())
	bad.Write([]byte(wstest.UpgradeRequest(s.Addr().String(), "/ws?token=forged")))
	bad.ExpectRejected(401)
	if got := metricValue(t, reg, "wshub_eventloop_upgrades_refused_total", map[string]string{"status": "401"}); got != 1 {
		t.Fatalf("upgrades_refused_total{status=401} = %v, want 1", got)
	}
	// The refused request was never opened; an accepted one is, and works.
	good := dialWS(t, s, "/ws?ok")
	good.Write(wstest.Frame(ws.OpText, true, true, []byte("hi")))
	if f := good.NextFrame(); string(f.Payload) != "hi" {
		t.Fatalf("echo %q", f.Payload)
	}
	if n := h.opened.Load(); n != 1 {
		t.Fatalf("%d connections opened, want 1 (the refused one must not be)", n)
	}
}

// closeReason reads up to a close frame and returns its code and reason.
func closeReason(t *testing.T, c *client) (uint16, string) {
	t.Helper()
	for {
		f := c.NextFrame()
		if f.Header.OpCode == ws.OpClose {
			if len(f.Payload) < 2 {
				t.Fatal("close without a code")
			}
			return binary.BigEndian.Uint16(f.Payload), string(f.Payload[2:])
		}
	}
}

func TestExpiryClosesWithinASecond(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := &gatedHandler{testHandler: newTestHandler()}
	s := startServer(t, Config{Addr: "127.0.0.1:0", Loops: 1, Metrics: reg}, h)
	start := time.Now()
	c := dialWS(t, s, "/ws?exp=300")
	code, reason := closeReason(t, c)
	took := time.Since(start)
	if code != wsproto.ClosePolicy || reason != "expired" {
		t.Fatalf("close %d %q, want 1008 \"expired\"", code, reason)
	}
	// SetExpiry rounds up to the second after the epoch, so the close comes
	// at most a second (and a tick) after the expiry, never before it.
	if took < 300*time.Millisecond || took > 300*time.Millisecond+1100*time.Millisecond {
		t.Fatalf("closed %v after connecting, want within a second after 300ms", took)
	}
	if got := metricValue(t, reg, "wshub_eventloop_expired_total", nil); got != 1 {
		t.Fatalf("expired_total = %v, want 1", got)
	}
}

func TestExpiryMovedByHandler(t *testing.T) {
	h := &gatedHandler{testHandler: newTestHandler(), renew: 1500 * time.Millisecond}
	// Pings every 200 ms: the expiry has to share the one timer with them.
	s := startServer(t, Config{Addr: "127.0.0.1:0", Loops: 1, PingInterval: 200 * time.Millisecond}, h)
	start := time.Now()
	c := dialWS(t, s, "/ws?exp=100")
	pings := 0
	for {
		f, err := c.ReadFrame(5 * time.Second)
		if err != nil {
			t.Fatalf("reading: %v", err)
		}
		if f.Header.OpCode == ws.OpPing {
			pings++
			c.Write(wstest.Frame(ws.OpPong, true, true, f.Payload))
			continue
		}
		if f.Header.OpCode != ws.OpClose {
			continue
		}
		break
	}
	took := time.Since(start)
	if n := h.expired.Load(); n != 2 {
		t.Fatalf("OnExpire ran %d times, want 2 (once renewed, once final)", n)
	}
	if took < 1600*time.Millisecond {
		t.Fatalf("closed after %v: the renewed expiry (1.6 s) was not honoured", took)
	}
	if pings < 3 {
		t.Fatalf("%d pings in %v: the expiry must not stop the pings", pings, took)
	}
}

// laterHandler defers every upgrade and hands the connection to the test,
// which answers it with Resume on the connection's loop.
type laterHandler struct {
	*testHandler
	pending chan *Conn
}

func (h *laterHandler) OnUpgrade(c *Conn, req *wsproto.Handshake) int {
	h.pending <- c
	return UpgradeLater
}

func TestUpgradeLater(t *testing.T) {
	h := &laterHandler{testHandler: newTestHandler(), pending: make(chan *Conn, 4)}
	s := startServer(t, Config{Addr: "127.0.0.1:0", Loops: 1, HandshakeTimeout: 500 * time.Millisecond}, h)
	resume := func(c *Conn, code int) { c.loop.Post(func() { c.Resume(func() int { return code }) }) }

	// Accepted later, with a frame the client sent right behind its request:
	// it waits in the buffer and is echoed once the upgrade completes.
	a := dialRaw(t, s.Addr().String())
	a.Write(append([]byte(wstest.UpgradeRequest(s.Addr().String(), "/ws")), wstest.Frame(ws.OpText, true, true, []byte("early"))...))
	resume(<-h.pending, 0)
	if resp := a.ReadResponse(); resp.StatusCode != 101 {
		t.Fatalf("resumed upgrade: %d", resp.StatusCode)
	}
	if f := a.NextFrame(); string(f.Payload) != "early" {
		t.Fatalf("the frame sent behind the request: %q", f.Payload)
	}

	// Refused later.
	b := dialRaw(t, s.Addr().String())
	b.Write([]byte(wstest.UpgradeRequest(s.Addr().String(), "/ws")))
	resume(<-h.pending, 401)
	b.ExpectRejected(401)

	// Never answered: the handshake timeout closes it, and a late Resume is
	// a no-op.
	c := dialRaw(t, s.Addr().String())
	c.Write([]byte(wstest.UpgradeRequest(s.Addr().String(), "/ws")))
	late := <-h.pending
	c.ExpectEOF(5 * time.Second)
	resume(late, 0)
	if n := h.opened.Load(); n != 1 {
		t.Fatalf("%d connections opened, want 1", n)
	}
	// The server still serves.
	d := dialRaw(t, s.Addr().String())
	d.Write([]byte(wstest.UpgradeRequest(s.Addr().String(), "/ws")))
	resume(<-h.pending, 0)
	if resp := d.ReadResponse(); resp.StatusCode != 101 {
		t.Fatalf("after a timed-out one: %d", resp.StatusCode)
	}
}
