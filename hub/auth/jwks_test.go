package auth

import (
	"crypto"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// jwk describes one key of a test JWKS document.
type jwk struct {
	kid, alg string
	pub      crypto.PublicKey
}

// jwksDoc renders keys as a JWKS document (with go-jose, the same library
// that parses it).
func jwksDoc(t testing.TB, keys ...jwk) []byte {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.pub, KeyID: k.kid, Algorithm: k.alg, Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jwksServer serves a JWKS document that a test can replace or break, and
// counts the requests.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int64

	mu     sync.Mutex
	doc    []byte
	status int
}

func newJWKSServer(t testing.TB, doc []byte) *jwksServer {
	s := &jwksServer{doc: doc, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		doc, status := s.doc, s.status
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(doc)
	}))
	t.Cleanup(s.Close)
	return s
}

// set replaces the document and the status it is served with.
func (s *jwksServer) set(doc []byte, status int) {
	s.mu.Lock()
	s.doc, s.status = doc, status
	s.mu.Unlock()
}

// writeFile writes data to a new file and returns its path.
func writeFile(t testing.TB, data []byte) string {
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// kidHeader is a header naming kid.
func kidHeader(kid string) map[string]any { return map[string]any{"kid": kid} }

// eventually polls cond until it holds or 5 s have passed.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestJWKSFile(t *testing.T) {
	k := testKeys()
	doc := jwksDoc(t,
		jwk{"r1", "", &k.rsa.PublicKey},
		jwk{"e1", "ES256", &k.p256.PublicKey},
		jwk{"e2", "", &k.p384.PublicKey},
		jwk{"d1", "EdDSA", k.ed.Public()},
	)
	v := newVerifier(t, Config{JWKS: writeFile(t, doc), Audience: testAudience})
	ok := claims{"sub": "u1", "aud": testAudience}
	for _, c := range []struct {
		alg, kid string
		key      any
	}{
		{"RS256", "r1", k.rsa}, {"RS512", "r1", k.rsa}, {"ES256", "e1", k.p256},
		{"ES384", "e2", k.p384}, {"EdDSA", "d1", k.ed},
	} {
		mustVerify(t, v, sign(t, c.alg, c.key, kidHeader(c.kid), ok))
		// Without a kid, every JWKS key of the token's type is tried.
		mustVerify(t, v, sign(t, c.alg, c.key, nil, ok))
	}
	for _, c := range []struct {
		name, reason, token string
	}{
		{"unknown kid", ReasonUnknownKey, sign(t, "RS256", k.rsa, kidHeader("r9"), ok)},
		{"kid of another key type", ReasonAlgorithm, sign(t, "ES256", k.p256, kidHeader("r1"), ok)},
		{"kid of another curve", ReasonAlgorithm, sign(t, "ES384", k.p384, kidHeader("e1"), ok)},
		{"kid signed by another key", ReasonSignature, sign(t, "RS256", k.rsa2, kidHeader("r1"), ok)},
		{"no kid, no such key", ReasonSignature, sign(t, "RS256", k.rsa2, nil, ok)},
		{"HS256 keyed with the JWKS", ReasonAlgorithm, sign(t, "HS256", doc, kidHeader("r1"), ok)},
		{"claims still checked", ReasonAudience, sign(t, "EdDSA", k.ed, kidHeader("d1"), claims{"sub": "u1"})},
	} {
		_, err := v.Verify(c.token)
		if ReasonOf(err) != c.reason {
			t.Errorf("%s: %v, want %q", c.name, err, c.reason)
		}
	}
}

func TestJWKSSkipsUnusableKeys(t *testing.T) {
	k := testKeys()
	good := jwksDoc(t, jwk{"r1", "RS256", &k.rsa.PublicKey})
	private, err := json.Marshal(jose.JSONWebKey{Key: k.p256, KeyID: "priv", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(good, &doc); err != nil {
		t.Fatal(err)
	}
	doc.Keys = append(doc.Keys,
		private,
		json.RawMessage(`{"kty":"oct","kid":"sym","k":"c2VjcmV0"}`),
		json.RawMessage(`{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"}`),
		json.RawMessage(`{"kty":"XYZ","kid":"new"}`),
		json.RawMessage(`{"kty":"EC","kid":"bad","crv":"P-256","x":"AAAA","y":"AAAA"}`),
		json.RawMessage(`"not a key"`),
	)
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	log, lines := captureLogger(t)
	v := newVerifier(t, Config{JWKS: writeFile(t, data), Logger: log})
	if n := len(lines()); n != 6 {
		t.Errorf("logged %d lines, want one per skipped key (6): %q", n, lines())
	}
	mustVerify(t, v, sign(t, "RS256", k.rsa, kidHeader("r1"), claims{"sub": "u1"}))
	// The JWK's alg narrows what its key verifies.
	_, err = v.Verify(sign(t, "RS384", k.rsa, kidHeader("r1"), claims{"sub": "u1"}))
	wantReason(t, err, ReasonAlgorithm)
	_, err = v.Verify(sign(t, "ES256", k.p256, kidHeader("priv"), claims{"sub": "u1"}))
	wantReason(t, err, ReasonUnknownKey)
}

func TestJWKSFileRefused(t *testing.T) {
	k := testKeys()
	many := make([]jwk, MaxJWKSKeys+1)
	for i := range many {
		many[i] = jwk{fmt.Sprint("k", i), "", k.ed.Public()}
	}
	for name, data := range map[string][]byte{
		"not JSON":        []byte("{"),
		"not an object":   []byte(`["keys"]`),
		"keys not a list": []byte(`{"keys":{}}`),
		"no keys":         []byte(`{"keys":[]}`),
		"only oct keys":   []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`),
		"too many keys":   jwksDoc(t, many...),
		"too large":       []byte(`{"keys":[],"pad":"` + strings.Repeat("x", MaxJWKSSize) + `"}`),
	} {
		v, err := New(Config{JWKS: writeFile(t, data), Logger: quietLogger(t)})
		if err == nil {
			v.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestJWKSFileRereadForNewKid(t *testing.T) {
	k := testKeys()
	path := writeFile(t, jwksDoc(t, jwk{"a", "", k.ed.Public()}))
	const minRefetch = 20 * time.Millisecond
	v := newVerifier(t, Config{JWKS: path, MinRefetch: minRefetch})
	next := jwksDoc(t, jwk{"a", "", k.ed.Public()}, jwk{"b", "", &k.p256.PublicKey})
	if err := os.WriteFile(path, next, 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(minRefetch) // past the rate limit that New's read started
	mustVerify(t, v, sign(t, "ES256", k.p256, kidHeader("b"), claims{"sub": "u1"}))
}

func TestJWKSURLRotation(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, jwksDoc(t, jwk{"2024", "RS256", &k.rsa.PublicKey}))
	const minRefetch = 50 * time.Millisecond
	v := newVerifier(t, Config{JWKS: srv.URL + "/.well-known/jwks.json", MinRefetch: minRefetch, Refresh: -1})
	old := sign(t, "RS256", k.rsa, kidHeader("2024"), claims{"sub": "u1"})
	mustVerify(t, v, old)

	// The provider publishes a new key and withdraws the old one.
	srv.set(jwksDoc(t, jwk{"2025", "RS256", &k.rsa2.PublicKey}), http.StatusOK)
	time.Sleep(minRefetch) // past the rate limit that New's fetch started
	// The first token with the new kid fetches the JWKS and waits for it.
	mustVerify(t, v, sign(t, "RS256", k.rsa2, kidHeader("2025"), claims{"sub": "u1"}))
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2 (start, new kid)", n)
	}
	_, err := v.Verify(old)
	wantReason(t, err, ReasonUnknownKey)
}

func TestJWKSServerDownKeepsCachedKeys(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, jwksDoc(t, jwk{"k1", "", k.ed.Public()}))
	const minRefetch = 20 * time.Millisecond
	log, lines := captureLogger(t)
	v := newVerifier(t, Config{JWKS: srv.URL, MinRefetch: minRefetch, Logger: log})
	good := sign(t, "EdDSA", k.ed, kidHeader("k1"), claims{"sub": "u1"})
	mustVerify(t, v, good)

	srv.set([]byte("upstream error"), http.StatusServiceUnavailable)
	time.Sleep(minRefetch)
	_, err := v.Verify(sign(t, "EdDSA", k.ed, kidHeader("k2"), claims{"sub": "u1"}))
	wantReason(t, err, ReasonUnknownKey)
	eventually(t, "the failed fetch to be logged", func() bool {
		return strings.Contains(strings.Join(lines(), "\n"), "503")
	})
	mustVerify(t, v, good)

	// Down for good: connections refused.
	srv.Close()
	time.Sleep(minRefetch)
	_, err = v.Verify(sign(t, "EdDSA", k.ed, kidHeader("k3"), claims{"sub": "u1"}))
	wantReason(t, err, ReasonUnknownKey)
	mustVerify(t, v, good)
	mustVerify(t, v, sign(t, "EdDSA", k.ed, nil, claims{"sub": "u1"}))
}

func TestJWKSURLUnreachableAtStart(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, nil)
	srv.set([]byte("starting"), http.StatusServiceUnavailable)
	log, lines := captureLogger(t)
	v := newVerifier(t, Config{JWKS: srv.URL, Secrets: [][]byte{secretA}, MinRefetch: 20 * time.Millisecond, Logger: log})
	if !strings.Contains(strings.Join(lines(), "\n"), "at start") {
		t.Fatalf("the failed first fetch was not logged: %q", lines())
	}
	tok := sign(t, "ES256", k.p256, kidHeader("k1"), claims{"sub": "u1"})
	_, err := v.Verify(tok)
	wantReason(t, err, ReasonUnknownKey)
	mustVerify(t, v, signHS(t, claims{"sub": "u1"})) // the secrets work meanwhile

	// The provider comes up: the fetcher retries by itself.
	srv.set(jwksDoc(t, jwk{"k1", "", &k.p256.PublicKey}), http.StatusOK)
	eventually(t, "the JWKS to be fetched", func() bool {
		_, err := v.Verify(tok)
		return err == nil
	})
}

func TestJWKSRandomKidFloodIsBounded(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, jwksDoc(t, jwk{"k1", "", k.ed.Public()}))
	v := newVerifier(t, Config{JWKS: srv.URL, MinRefetch: time.Minute})
	good := sign(t, "EdDSA", k.ed, kidHeader("k1"), claims{"sub": "u1"})

	const tokens, workers = 10000, 4
	// The kid is looked up before the signature is checked, so the flood
	// reuses one payload and signature: signing 10,000 tokens under -race
	// would take most of the test's time.
	rest := good[strings.IndexByte(good, '.'):]
	flood := make([]string, tokens)
	for i := range flood {
		flood[i] = b64(fmt.Sprintf(`{"alg":"EdDSA","kid":"%016x"}`, rand.Uint64())) + rest
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < tokens; i += workers {
				if _, err := v.Verify(flood[i]); ReasonOf(err) != ReasonUnknownKey {
					errs <- fmt.Errorf("token %d: %v", i, err)
					return
				}
				if i%500 == 0 {
					if _, err := v.Verify(good); err != nil {
						errs <- fmt.Errorf("known kid during the flood: %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// New fetched once; the flood came within MinRefetch of it.
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("%d fetches for %d unknown kids, want 1", n, tokens)
	}

	// With a short MinRefetch the flood gets one fetch per interval at most.
	srv.hits.Store(0)
	const minRefetch = 20 * time.Millisecond
	v = newVerifier(t, Config{JWKS: srv.URL, MinRefetch: minRefetch})
	start := time.Now()
	for _, tok := range flood {
		v.Verify(tok)
	}
	elapsed := time.Since(start)
	if n, most := srv.hits.Load(), 1+int64(elapsed/minRefetch)+1; n > most {
		t.Fatalf("%d fetches in %v, want at most %d (one per %v, plus New's)", n, elapsed, most, minRefetch)
	}
}

func TestJWKSKidSelection(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, jwksDoc(t, jwk{"j1", "", &k.rsa.PublicKey}))
	v := newVerifier(t, Config{JWKS: srv.URL, PublicKeys: []crypto.PublicKey{&k.rsa2.PublicKey}})
	mustVerify(t, v, sign(t, "RS256", k.rsa, kidHeader("j1"), claims{"sub": "u1"}))
	mustVerify(t, v, sign(t, "RS256", k.rsa2, nil, claims{"sub": "u1"}))
	mustVerify(t, v, sign(t, "RS256", k.rsa, nil, claims{"sub": "u1"}))
	// With a kid, only the JWKS key of that kid counts, not the PEM one.
	_, err := v.Verify(sign(t, "RS256", k.rsa2, kidHeader("j1"), claims{"sub": "u1"}))
	wantReason(t, err, ReasonSignature)
}

func TestCloseStopsFetching(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, jwksDoc(t, jwk{"k1", "", k.ed.Public()}))
	v := newVerifier(t, Config{JWKS: srv.URL, MinRefetch: time.Millisecond, Refresh: time.Millisecond})
	eventually(t, "a refresh", func() bool { return srv.hits.Load() >= 3 })
	v.Close()
	v.Close()
	// A request that Close cancelled may still reach the handler: let it.
	time.Sleep(20 * time.Millisecond)
	n := srv.hits.Load()
	// A goroutine still running would fetch every millisecond.
	time.Sleep(50 * time.Millisecond)
	_, err := v.Verify(sign(t, "EdDSA", k.ed, kidHeader("k2"), claims{"sub": "u1"}))
	wantReason(t, err, ReasonUnknownKey)
	mustVerify(t, v, sign(t, "EdDSA", k.ed, kidHeader("k1"), claims{"sub": "u1"}))
	if m := srv.hits.Load(); m != n {
		t.Fatalf("%d fetches after Close", m-n)
	}
}
