package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wshub/wshub/hub/auth"
	"github.com/wshub/wshub/wsproto/wstest"
)

// The gateway's asymmetric key sources, end to end: a JWKS served over HTTP
// (rotation, an unreachable provider, a flood of made-up kids) and PEM
// files, against the real binary.

// rsaKey, ecKey and edKey generate a key pair, failing the test otherwise.
func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func edKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signed signs claims with key by method, with kid in the header unless it
// is empty.
func signed(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jwk is the public JWK of a private key, with kid and alg.
func jwk(kid, alg string, priv any) jose.JSONWebKey {
	var pub any
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		pub = &k.PublicKey
	case *ecdsa.PrivateKey:
		pub = &k.PublicKey
	case ed25519.PrivateKey:
		pub = k.Public()
	}
	return jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"}
}

// jwksServer is an identity provider's JWKS endpoint: it serves the key set
// the test last set and counts the requests it gets.
type jwksServer struct {
	*httptest.Server
	doc      atomic.Pointer[[]byte]
	requests atomic.Int64
}

func newJWKSServer(t *testing.T, keys ...jose.JSONWebKey) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.set(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write(*s.doc.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

// set replaces the key set served from now on.
func (s *jwksServer) set(t *testing.T, keys ...jose.JSONWebKey) {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	s.doc.Store(&b)
}

// metricWith adds up the samples of name whose labels include labels (e.g.
// `reason="unknown_key"`).
func metricWith(g *gateway, name, labels string) float64 {
	g.t.Helper()
	_, body := g.get("/metrics")
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		end := strings.LastIndexByte(rest, '}')
		if end < 0 || !strings.Contains(rest[:end], labels) {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest[end+1:]), 64)
		if err != nil {
			g.t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// expectAdmitted upgrades with token and checks that the connection is
// served: a subscribe is answered ok.
func expectAdmitted(t *testing.T, addr, what, token string) *client {
	t.Helper()
	code, c := upgradeStatus(t, addr, "/ws", "Authorization: Bearer "+token)
	if code != 101 {
		t.Fatalf("%s: HTTP %d, want 101", what, code)
	}
	c.sendText(`{"op":"subscribe","channel":"room","id":1}`)
	if m := c.next(); m["op"] != "ok" {
		t.Fatalf("%s: subscribe: %v", what, m)
	}
	return c
}

func expectRefused(t *testing.T, addr, what, token string, want int) {
	t.Helper()
	if code, _ := upgradeStatus(t, addr, "/ws", "Authorization: Bearer "+token); code != want {
		t.Fatalf("%s: HTTP %d, want %d", what, code, want)
	}
}

// upgradeFlood sends n upgrades over workers connections at a time, one
// upgrade per TCP connection (a refused upgrade closes it), spread evenly
// over span (the i-th not before i*span/n from now; 0: as fast as they go),
// the i-th with token(i), and returns how many got each HTTP status.
func upgradeFlood(t *testing.T, addr string, n, workers int, span time.Duration, token func(i int) string) map[int]int {
	t.Helper()
	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		firstErr error
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	begin := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				tok := token(i)
				if due := begin.Add(span * time.Duration(i) / time.Duration(n)); time.Now().Before(due) {
					time.Sleep(time.Until(due)) // keeps the pace, the flood's shape
				}
				code, err := oneUpgrade(addr, tok)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				statuses[code]++
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("upgrade flood: %v (statuses so far %v)", firstErr, statuses)
	}
	return statuses
}

// oneUpgrade sends one upgrade with token and returns the status; a refused
// one is read until the gateway closes the connection.
func oneUpgrade(addr, token string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, wstest.UpgradeRequest(addr, "/ws", "Authorization: Bearer "+token)); err != nil {
		return 0, err
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != 101 {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return resp.StatusCode, fmt.Errorf("after %d: %v, want the gateway to close", resp.StatusCode, err)
		}
	}
	return resp.StatusCode, nil
}

// TestJWKSOverHTTP runs two gateways on JWKS URLs of in-test providers.
//
// Timing: the fetch at start opens the 10 s window of auth.DefaultMinRefetch
// (fetcher.fetch stamps it), so no refetch can happen until 10 s after the
// start, whether the JWKS is a URL or a file (a file is re-read under the
// same limit, so it would not be quicker). The test spends that window on
// what needs no refetch (RS256 and ES256 tokens by kid, forgeries) and on
// 10,000 upgrades with made-up kids, spread so that they go on past the
// moment the window opens: however many arrive, they start exactly one
// fetch, which brings in the key the provider rotated to meanwhile. On the
// other gateway, whose provider went down right after its start, an unknown
// kid then makes it try a fetch that fails, after which its known kids must
// still verify. The whole takes about 11 s.
func TestJWKSOverHTTP(t *testing.T) {
	r1, r2, e1 := rsaKey(t), rsaKey(t), ecKey(t)
	claims := func(sub string) jwt.MapClaims {
		return jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}
	}
	idp := newJWKSServer(t, jwk("r1", "RS256", r1), jwk("e1", "ES256", e1))
	down := newJWKSServer(t, jwk("r1", "RS256", r1), jwk("e1", "ES256", e1))
	start := time.Now() // before the start's fetch: every window opens later than start + k*10 s
	g := startGateway(t, "--jwt-jwks", idp.URL+"/.well-known/jwks.json")
	up := time.Now() // after it: the first window opens before up + 10 s
	gDown := startGateway(t, "--jwt-jwks", down.URL)
	if n := idp.requests.Load(); n != 1 {
		t.Fatalf("JWKS requests at start: %d, want 1", n)
	}
	if n := down.requests.Load(); n != 1 {
		t.Fatalf("JWKS requests at start (second provider): %d, want 1", n)
	}
	// The second provider goes away: gDown has its keys from the start.
	down.Close()

	expectAdmitted(t, g.addr, "RS256 with kid r1", signed(t, jwt.SigningMethodRS256, r1, "r1", claims("alice")))
	expectAdmitted(t, g.addr, "ES256 with kid e1", signed(t, jwt.SigningMethodES256, e1, "e1", claims("bob")))
	expectRefused(t, g.addr, "kid r1 signed by another RSA key", signed(t, jwt.SigningMethodRS256, r2, "r1", claims("mallory")), 401)
	expectRefused(t, g.addr, "RS256 under the ES256 key's kid", signed(t, jwt.SigningMethodRS256, r1, "e1", claims("mallory")), 401)
	pubJWK, _ := json.Marshal(jwk("r1", "RS256", r1))
	expectRefused(t, g.addr, "HS256 keyed with the public JWK", signed(t, jwt.SigningMethodHS256, pubJWK, "r1", claims("mallory")), 401)
	newKid := signed(t, jwt.SigningMethodRS256, r2, "r2", claims("carol"))
	expectRefused(t, g.addr, "kid r2 before it is published", newKid, 401)
	if n, e := idp.requests.Load(), time.Since(start); e < auth.DefaultMinRefetch && n != 1 {
		t.Fatalf("%d JWKS requests %v after the start, want 1: the window is shut", n, e)
	}

	// Rotation: the provider publishes r2 and withdraws r1.
	idp.set(t, jwk("r2", "RS256", r2), jwk("e1", "ES256", e1))

	// 10,000 upgrades with made-up kids, each signed with the attacker's
	// own key, until a second after the window opened: all 401 for the key
	// lookup, and one fetch.
	evil := ecKey(t)
	const flood = 10000
	statuses := upgradeFlood(t, g.addr, flood, 4, time.Until(up.Add(auth.DefaultMinRefetch+time.Second)), func(int) string {
		kid := make([]byte, 8)
		rand.Read(kid)
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims("mallory"))
		tok.Header["kid"] = hex.EncodeToString(kid)
		s, err := tok.SignedString(evil)
		if err != nil {
			panic(err) // ES256 with a P-256 key cannot fail
		}
		return s
	})
	fetches, elapsed := idp.requests.Load(), time.Since(start)
	t.Logf("%d upgrades with unknown kids, the last %v after the start: %v; %d JWKS requests", flood, elapsed, statuses, fetches)
	if statuses[401] != flood {
		t.Fatalf("upgrades with unknown kids: %v, want all %d refused with 401", statuses, flood)
	}
	if n := metricWith(g, "wshub_hub_upgrades_refused_total", `reason="unknown_key"`); n < flood {
		t.Fatalf("upgrades refused for unknown_key: %v, want at least %d", n, flood)
	}

	// The rotated kid is admitted: the flood's refetch brought it in (the
	// first token after the window opens may be refused, as the gateway
	// never waits for the network; a retry must not be).
	deadline := up.Add(auth.DefaultMinRefetch + 5*time.Second)
	for {
		code, c := upgradeStatus(t, g.addr, "/ws", "Authorization: Bearer "+newKid)
		if code == 101 {
			c.Conn.Close()
			break
		}
		if code != 401 {
			t.Fatalf("kid r2 while waiting for the rotation: HTTP %d", code)
		}
		if time.Now().After(deadline) {
			t.Fatalf("kid r2 still refused %v after the start; %d JWKS requests", time.Since(start), idp.requests.Load())
		}
		time.Sleep(100 * time.Millisecond) // paces the retries, as a client's backoff would
	}
	t.Logf("rotated kid admitted %v after the start", time.Since(start))
	expectAdmitted(t, g.addr, "RS256 with the rotated kid r2", newKid)
	expectAdmitted(t, g.addr, "ES256 with kid e1 after the rotation", signed(t, jwt.SigningMethodES256, e1, "e1", claims("bob")))
	expectRefused(t, g.addr, "kid r1 once withdrawn", signed(t, jwt.SigningMethodRS256, r1, "r1", claims("alice")), 401)
	// At most one fetch per window, the start's included: 1 + elapsed/10s
	// (the bound allows one more).
	fetches, elapsed = idp.requests.Load(), time.Since(start)
	if bound := 1 + int64(elapsed/auth.DefaultMinRefetch); fetches < 2 || fetches > bound {
		t.Fatalf("%d JWKS requests in %v, want between 2 and %d", fetches, elapsed, bound)
	}

	// The provider that went down: an unknown kid makes the gateway try it
	// (its window is open by now), the fetch fails, and the cached keys stay.
	const failed = "JWKS fetch failed; the keys in use stay"
	unknown := signed(t, jwt.SigningMethodRS256, r2, "r9", claims("dave"))
	for !strings.Contains(gDown.logs.String(), failed) {
		expectRefused(t, gDown.addr, "an unknown kid with the provider down", unknown, 401)
		if time.Since(up) > auth.DefaultMinRefetch+5*time.Second {
			t.Fatalf("no failed JWKS fetch logged %v after the start", time.Since(start))
		}
		time.Sleep(100 * time.Millisecond) // paces the retries while the fetch is tried
	}
	expectAdmitted(t, gDown.addr, "RS256 with kid r1, provider down", signed(t, jwt.SigningMethodRS256, r1, "r1", claims("alice")))
	expectAdmitted(t, gDown.addr, "ES256 with kid e1, provider down", signed(t, jwt.SigningMethodES256, e1, "e1", claims("bob")))
}

// writePEM writes the PKIX "PUBLIC KEY" PEM of pub into dir and returns its
// path and bytes.
func writePEM(t *testing.T, dir, name string, pub any) (string, []byte) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, b
}

// TestJWTPublicKeyFiles: RS256, ES256 and EdDSA tokens verify against PEM
// files given with --jwt-public-key; an HS256 token whose HMAC key is the RSA
// PEM itself (the algorithm-confusion forgery) does not, nor do tokens
// signed by other keys of the same types.
func TestJWTPublicKeyFiles(t *testing.T) {
	dir := t.TempDir()
	rk, ek, dk := rsaKey(t), ecKey(t), edKey(t)
	rsaPEM, rsaBytes := writePEM(t, dir, "rsa.pem", &rk.PublicKey)
	ecPEM, ecBytes := writePEM(t, dir, "ec.pem", &ek.PublicKey)
	edPEM, _ := writePEM(t, dir, "ed.pem", dk.Public())
	g := startGateway(t, "--jwt-public-key", rsaPEM, "--jwt-public-key", ecPEM, "--jwt-public-key", edPEM)
	claims := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}

	expectAdmitted(t, g.addr, "RS256", signed(t, jwt.SigningMethodRS256, rk, "", claims))
	expectAdmitted(t, g.addr, "RS512", signed(t, jwt.SigningMethodRS512, rk, "", claims))
	expectAdmitted(t, g.addr, "ES256", signed(t, jwt.SigningMethodES256, ek, "", claims))
	expectAdmitted(t, g.addr, "EdDSA", signed(t, jwt.SigningMethodEdDSA, dk, "", claims))
	// Without a JWKS a kid picks nothing: the configured keys are tried.
	expectAdmitted(t, g.addr, "ES256 with a kid", signed(t, jwt.SigningMethodES256, ek, "whatever", claims))

	refusedBefore := metricWith(g, "wshub_hub_upgrades_refused_total", `reason="algorithm"`)
	expectRefused(t, g.addr, "HS256 keyed with the RSA public key's PEM", signed(t, jwt.SigningMethodHS256, rsaBytes, "", claims), 401)
	expectRefused(t, g.addr, "HS256 keyed with the RSA PEM, trimmed", signed(t, jwt.SigningMethodHS256, []byte(strings.TrimSpace(string(rsaBytes))), "", claims), 401)
	expectRefused(t, g.addr, "HS256 keyed with the EC public key's PEM", signed(t, jwt.SigningMethodHS256, ecBytes, "", claims), 401)
	if n := metricWith(g, "wshub_hub_upgrades_refused_total", `reason="algorithm"`) - refusedBefore; n != 3 {
		t.Fatalf("HS256 forgeries refused for their algorithm: %v, want 3", n)
	}
	expectRefused(t, g.addr, "RS256 by another key", signed(t, jwt.SigningMethodRS256, rsaKey(t), "", claims), 401)
	expectRefused(t, g.addr, "ES256 by another key", signed(t, jwt.SigningMethodES256, ecKey(t), "", claims), 401)
	expectRefused(t, g.addr, "EdDSA by another key", signed(t, jwt.SigningMethodEdDSA, edKey(t), "", claims), 401)
}
