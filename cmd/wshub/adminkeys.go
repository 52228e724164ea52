package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"io"
	"net/http"
	"strings"
)

// requireAPIKey guards the admin API: with keys configured, every /api/*
// call (and /metrics when protectMetrics) needs one of them in
// "Authorization: Bearer <key>" or "X-API-Key: <key>", else 401. /healthz
// and /readyz stay open for load balancers; so does /debug/pprof/, which
// only exists with --pprof on a listener the operator chose.
func requireAPIKey(keys []string, protectMetrics bool, next http.Handler) http.Handler {
	if len(keys) == 0 {
		return next
	}
	// Keys are compared as SHA-256 digests, in constant time: neither a
	// key's bytes nor its length leak through the comparison's timing.
	sums := make([][sha256.Size]byte, len(keys))
	for i, k := range keys {
		sums[i] = sha256.Sum256([]byte(k))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		guarded := strings.HasPrefix(r.URL.Path, "/api/") || protectMetrics && r.URL.Path == "/metrics"
		if guarded && !validKey(sums, presentedKey(r)) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wshub admin"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"code":401,"message":"an admin API key is required: Authorization: Bearer <key> or X-API-Key: <key>"}}`+"\n")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// presentedKey is the key a request carries, "" when none.
func presentedKey(r *http.Request) string {
	if k := r.Header.Get("X-API-Key"); k != "" {
		return k
	}
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(cred)
	}
	return ""
}

// validKey checks key against every configured digest (all of them, so the
// time taken does not say which matched).
func validKey(sums [][sha256.Size]byte, key string) bool {
	if key == "" {
		return false
	}
	got := sha256.Sum256([]byte(key))
	ok := 0
	for i := range sums {
		ok |= subtle.ConstantTimeCompare(got[:], sums[i][:])
	}
	return ok == 1
}
