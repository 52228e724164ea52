package eventloop

import (
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wshub/wshub/wsproto/wstest"
)

func TestMaxConnsRefusesExtraConnections(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newTestHandler()
	s := startServer(t, Config{MaxConns: 3, Metrics: reg}, h)
	var held []*client
	for range 3 {
		held = append(held, dialWS(t, s, "/ws"))
	}
	for range 2 {
		extra := dialRaw(t, s.Addr().String())
		extra.Conn.Write([]byte(wstest.UpgradeRequest("test", "/ws")))
		extra.Conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 16)
		if n, err := extra.Conn.Read(buf); err == nil {
			t.Fatalf("connection over MaxConns was served: %q", buf[:n])
		}
	}
	if v := metricValue(t, reg, "wshub_eventloop_refused_connections_total", map[string]string{"reason": "max_conns"}); v != 2 {
		t.Fatalf("refused connections %v, want 2", v)
	}
	for i, c := range held {
		msg := []byte{'m', byte('0' + i)}
		c.Write(wstest.Frame(ws.OpText, true, true, msg))
		if f := c.NextFrame(); string(f.Payload) != string(msg) {
			t.Fatalf("held connection %d: %q", i, f.Payload)
		}
	}
	if s.Conns() != 3 {
		t.Fatalf("Conns() = %d, want 3", s.Conns())
	}
	// A slot freed by a closed connection is used again.
	held[0].Conn.Close()
	eventually(t, 2*time.Second, "the slot to free", func() bool { return s.Conns() == 2 })
	dialWS(t, s, "/ws")
}

func TestDescriptorBudget(t *testing.T) {
	per := func(limit uint64, loops, reserved int) int {
		return int(limit) - fixedFDs - loops*loopFDs - reserved
	}
	for _, tc := range []struct {
		limit           uint64
		loops, reserved int
		maxConns        int // asked
		want            int // got; 0 = error
	}{
		{1024, 2, 64, 0, per(1024, 2, 64)},
		{20000, 2, 400, 0, per(20000, 2, 400)},
		{0, 1, 64, 0, per(unknownFDLimit, 1, 64)},         // unreadable: assume 1024
		{1 << 62, 1, 64, 0, per(maxConnsCeiling, 1, 64)},  // RLIM_INFINITY
		{1024, 2, 64, 500, 500},                           // under the budget: kept
		{1024, 2, 64, per(1024, 2, 64), per(1024, 2, 64)}, // exactly the budget
		{1024, 2, 64, per(1024, 2, 64) + 1, 0},            // one over: refused
		{100, 2, 76, 0, 0},                                // nothing left for connections
		{20000, 8, 19952, 0, 0},
	} {
		c := Config{Loops: tc.loops, ReservedFDs: tc.reserved, MaxConns: tc.maxConns}
		err := c.applyBudget(tc.limit)
		switch {
		case tc.want == 0 && err == nil:
			t.Errorf("%+v: MaxConns %d accepted, want an error", tc, c.MaxConns)
		case tc.want != 0 && err != nil:
			t.Errorf("%+v: %v", tc, err)
		case tc.want != 0 && c.MaxConns != tc.want:
			t.Errorf("%+v: MaxConns %d, want %d", tc, c.MaxConns, tc.want)
		}
	}
	// New applies it to the process's own limit.
	s, err := New(Config{Addr: "127.0.0.1:0", Logger: quietLogger()}, newTestHandler())
	if err != nil {
		t.Fatal(err)
	}
	if s.maxConns <= 0 {
		t.Fatalf("default MaxConns %d", s.maxConns)
	}
	if _, err := New(Config{Addr: "127.0.0.1:0", Logger: quietLogger(), MaxConns: maxConnsCeiling + 1}, newTestHandler()); err == nil {
		t.Fatal("MaxConns over any descriptor budget accepted")
	}
}

// Per-loop SO_REUSEPORT listeners must not let a second server join a port
// already in use: it fails the way a plain bind does.
func TestListenAddressInUse(t *testing.T) {
	s := startServer(t, Config{}, newTestHandler())
	second, err := New(Config{Addr: s.Addr().String(), Loops: 2, Logger: quietLogger()}, newTestHandler())
	if err != nil {
		t.Fatal(err)
	}
	err = second.Run()
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("second server on %s: Run returned %v, want address already in use", s.Addr(), err)
	}
	// Port 0 resolves to one port for every loop: connections reach both
	// loops of the same server.
	s2 := startServer(t, Config{Loops: 2}, newTestHandler())
	dialUntilBound(t, s2)
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Addr: ":0", SendQueue: -1},
		{Addr: ":0", PongTimeout: -time.Second},
		{Addr: ":0", SendQueue: 1 << 21},
	} {
		if _, err := New(cfg, newTestHandler()); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	if _, err := New(Config{Addr: ":0"}, nil); err == nil {
		t.Error("New accepted a nil Handler")
	}
}
