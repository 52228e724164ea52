package testserver

import (
	"net/http"
	"strings"
	"sync"

	"github.com/wshub/wshub/hub/auth"
)

// AuthGate stands in front of a hub's handler as the gateway's upgrade
// check does: the Authorization Bearer token, else the token query
// parameter, verified against an HS secret, or 401. It records every sub
// it let in with where its token was, so that tests can see what each
// connection presented.
type AuthGate struct {
	v     *auth.Verifier
	inner http.Handler
	mu    sync.Mutex
	subs  map[string]string // sub -> "header" or "query", or "again" when presented twice
}

// NewAuthGate verifies with secret (tokens must have exp) in front of inner.
func NewAuthGate(secret string, inner http.Handler) (*AuthGate, error) {
	v, err := auth.New(auth.Config{Secrets: [][]byte{[]byte(secret)}, RequireExp: true})
	if err != nil {
		return nil, err
	}
	return &AuthGate{v: v, inner: inner, subs: map[string]string{}}, nil
}

func (g *AuthGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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

// Subs returns every sub let in so far, with where its token was.
func (g *AuthGate) Subs() map[string]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]string, len(g.subs))
	for k, v := range g.subs {
		out[k] = v
	}
	return out
}

// Wheres counts the subs let in by where their token was.
func (g *AuthGate) Wheres() map[string]int {
	n := map[string]int{}
	for _, w := range g.Subs() {
		n[w]++
	}
	return n
}

// Close stops the verifier.
func (g *AuthGate) Close() { g.v.Close() }
