package loadtest

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wshub/wshub/bench/refhub"
)

// startRefHub runs the reference hub in-process on loopback and returns
// its WebSocket and admin host:port.
func startRefHub(t *testing.T) (ws, admin string) {
	t.Helper()
	h := refhub.New()
	go h.Run()
	s := httptest.NewServer(h.Handler())
	a := httptest.NewServer(h.AdminHandler())
	t.Cleanup(func() {
		s.CloseClientConnections()
		s.Close()
		a.Close()
		h.Stop()
	})
	return strings.TrimPrefix(s.URL, "http://"), strings.TrimPrefix(a.URL, "http://")
}

func runLocal(t *testing.T, cfg Config) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw, err := Run(ctx, cfg, &Local{})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return Finalize(raw)
}

func TestFanoutCleanRunCountsExactly(t *testing.T) {
	ws, _ := startRefHub(t)
	res := runLocal(t, Config{
		Scenario: ScenarioFanout, Targets: []string{ws}, Pollers: 2,
		Subs: 40, Channels: 4, Publishers: 2, Msgs: 400, Size: 120, Duration: 10 * time.Second,
		Drain: 3 * time.Second,
	})
	// 400 publications over 4 channels with 10 subscribers each.
	if res.Published != 400 || res.Expected != 4000 || res.Delivered != 4000 {
		t.Fatalf("published %d expected %d delivered %d, want 400/4000/4000 (%+v)", res.Published, res.Expected, res.Delivered, res)
	}
	if res.Lost != 0 || res.Duplicates != 0 || res.Reordered != 0 || res.Errors != 0 {
		t.Fatalf("clean run reported lost %d dups %d reordered %d errors %v", res.Lost, res.Duplicates, res.Reordered, res.ErrorsByKind)
	}
	if res.Connected != 42 || res.Latency.Count != 4000 || res.Latency.Max <= 0 {
		t.Fatalf("connected %d latency %+v", res.Connected, res.Latency)
	}
}
