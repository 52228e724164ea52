package loadtest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wshub/wshub/bench/refhub"
	"github.com/wshub/wshub/hub/auth"
)

// authGate stands in front of the reference hub as the gateway's upgrade
// check does: the Bearer token, else the token query parameter, verified,
// or 401. It records each accepted sub with where its token was.
type authGate struct {
	v     *auth.Verifier
	inner http.Handler
	mu    sync.Mutex
	subs  map[string]string // sub -> "header" or "query"
}

func (g *authGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	where, tok := "query", r.URL.Query().Get("token")
	if h, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		where, tok = "header", h
	}
	c, err := g.v.Verify(tok)
	if err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	g.mu.Lock()
	if _, dup := g.subs[c.Sub]; dup {
		where = "again"
	}
	g.subs[c.Sub] = where
	g.mu.Unlock()
	g.inner.ServeHTTP(w, r)
}

// wheres counts the recorded subs by where their token was.
func (g *authGate) wheres() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := map[string]int{}
	for _, w := range g.subs {
		n[w]++
	}
	return n
}

func startAuthGate(t *testing.T) (*authGate, string) {
	t.Helper()
	h := refhub.New()
	go h.Run()
	g := &authGate{v: testVerifier(t, testSecret), inner: h.Handler(), subs: map[string]string{}}
	s := httptest.NewServer(g)
	t.Cleanup(func() { s.CloseClientConnections(); s.Close(); h.Stop() })
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
	if w := g.wheres(); w["query"] != 24 || len(w) != 1 {
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
	if w := g.wheres(); w["header"] != int(res.Conns) || len(w) != 1 {
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
