package eventloop

import (
	"github.com/wshub/wshub/wsproto/wstest"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
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
	if v := metricValue(t, reg, "wshub_eventloop_refused_connections_total", nil); v != 2 {
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

func TestDefaultMaxConns(t *testing.T) {
	for _, tc := range []struct {
		limit uint64
		want  int
	}{{1 << 20, 1<<20 - FDReserve}, {1024, 1024 - FDReserve}, {300, 150}, {0, 1024 - FDReserve}, {1 << 62, 1 << 24}} {
		if got := defaultMaxConns(tc.limit); got != tc.want {
			t.Errorf("defaultMaxConns(%d) = %d, want %d", tc.limit, got, tc.want)
		}
	}
	s, err := New(Config{Addr: "127.0.0.1:0", Logger: quietLogger()}, newTestHandler())
	if err != nil {
		t.Fatal(err)
	}
	if s.maxConns <= 0 {
		t.Fatalf("default MaxConns %d", s.maxConns)
	}
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
