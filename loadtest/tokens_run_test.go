package loadtest

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wshub/wshub/bench/refhub"
	"github.com/wshub/wshub/loadtest/testserver"
)

func startAuthGate(t *testing.T) (*testserver.AuthGate, string) {
	t.Helper()
	h := refhub.New()
	go h.Run()
	g, err := testserver.NewAuthGate(testSecret, h.Handler())
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(g)
	t.Cleanup(func() { s.CloseClientConnections(); s.Close(); h.Stop(); g.Close() })
	return g, strings.TrimPrefix(s.URL, "http://")
}

// TestIdleConnectionsPresentTheirOwnTokens: every connection, on every
// poller, is let in by its own pre-minted token in the query, one sub each.
func TestIdleConnectionsPresentTheirOwnTokens(t *testing.T) {
	g, addr := startAuthGate(t)
	res := runLocal(t, Config{Scenario: ScenarioIdle, Targets: []string{"ws://" + addr + "/ws?tenant=1"}, Pollers: 2, Conns: 24, Channels: 3,
		Duration: 50 * time.Millisecond, JWTSecret: testSecret})
	if res.Connected != 24 || res.Errors != 0 {
		t.Fatalf("connected %d, errors %v, refused %v", res.Connected, res.ErrorsByKind, res.Refused)
	}
	if w := g.Wheres(); w["query"] != 24 || len(w) != 1 {
		t.Errorf("tokens seen %v, want 24 distinct subs from the query", w)
	}
	if res.Tokens == nil || *res.Tokens != (TokenStats{Preminted: 24}) {
		t.Errorf("tokens %+v, want 24 minted ahead and none during the run", res.Tokens)
	}
}

// TestChurnPresentsTokensInTheHeader: with TokenHeader every churn cycle
// presents a fresh token in Authorization, all minted before the run.
func TestChurnPresentsTokensInTheHeader(t *testing.T) {
	g, addr := startAuthGate(t)
	res := runLocal(t, Config{Scenario: ScenarioChurn, Targets: []string{addr}, Conns: 10, Rate: 200, Duration: 300 * time.Millisecond,
		JWTSecret: testSecret, TokenHeader: true})
	if res.Churn == nil || res.Churn.Completed < 30 || res.Churn.Completed != res.Conns || res.Errors != 0 {
		t.Fatalf("churn %+v of %d dialed, errors %v, refused %v", res.Churn, res.Conns, res.ErrorsByKind, res.Refused)
	}
	if w := g.Wheres(); w["header"] != int(res.Conns) || len(w) != 1 {
		t.Errorf("tokens seen %v, want %d distinct subs from the header", w, res.Conns)
	}
	// 200/s for 0.3 s dials at most 61.
	if res.Tokens == nil || *res.Tokens != (TokenStats{Preminted: 61}) {
		t.Errorf("tokens %+v, want 61 minted ahead and none during the run", res.Tokens)
	}
}

// TestWrongSecretIsRefused: tokens the gateway cannot verify are refused
// with 401, and counted as such.
func TestWrongSecretIsRefused(t *testing.T) {
	_, addr := startAuthGate(t)
	res := runLocal(t, Config{Scenario: ScenarioIdle, Targets: []string{addr}, Conns: 10, Duration: time.Millisecond,
		JWTSecret: "not-" + testSecret})
	if res.Connected != 0 || res.Failed != 10 || res.Refused["401"] != 10 || res.ErrorsByKind["refused"] != 10 || res.Errors != 10 {
		t.Fatalf("connected %d failed %d refused %v errors %v", res.Connected, res.Failed, res.Refused, res.ErrorsByKind)
	}
}
