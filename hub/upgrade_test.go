package hub

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wshub/wshub/hub/auth"
)

const upgradeSecret = "an-upgrade-test-secret-of-32-bytes!"

func hsToken(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(upgradeSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hsVerifier(t testing.TB) *auth.Verifier {
	v, err := auth.New(auth.Config{Secrets: [][]byte{[]byte(upgradeSecret)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func TestTokenOf(t *testing.T) {
	for _, c := range []struct{ query, authz, want string }{
		{"token=abc", "", "abc"},
		{"x=1&token=abc&y=2", "", "abc"},
		{"token=a%2Bb", "", "a+b"},
		{"token=q", "Bearer h", "h"},
		{"token=q", "bEaReR   h ", "h"},
		{"token=q", "Basic dXNlcg==", "q"},
		{"tokens=q", "", ""},
		{"", "", ""},
	} {
		if got := tokenOf(c.query, c.authz); got != c.want {
			t.Errorf("tokenOf(%q, %q) = %q, want %q", c.query, c.authz, got, c.want)
		}
	}
}

func TestMaxConnsPerUser(t *testing.T) {
	p := newProto(t, Config{Auth: AuthConfig{Verifier: hsVerifier(t), MaxConnsPerUser: 2}})
	tok := "token=" + hsToken(t, jwt.MapClaims{"sub": "alice"})
	var conns []*fakeConn
	for i := range 3 {
		c := &fakeConn{id: uint64(10 + i)}
		code := p.h.OnUpgrade(c, tok, "")
		if want := map[bool]int{true: 0, false: 429}[i < 2]; code != want {
			t.Fatalf("upgrade %d: %d, want %d", i+1, code, want)
		}
		if code == 0 {
			p.h.OnOpen(c)
			conns = append(conns, c)
		}
	}
	// Another user is not affected; a closed connection gives its slot back.
	if code := p.h.OnUpgrade(&fakeConn{id: 20}, "token="+hsToken(t, jwt.MapClaims{"sub": "bob"}), ""); code != 0 {
		t.Fatalf("bob: %d", code)
	}
	p.h.OnClose(conns[0])
	if code := p.h.OnUpgrade(&fakeConn{id: 21}, tok, ""); code != 0 {
		t.Fatalf("after a close: %d, want 0", code)
	}
}

func TestAnonymousNeedsAllowAnonymous(t *testing.T) {
	strict := newProto(t, Config{Auth: AuthConfig{Verifier: hsVerifier(t)}})
	if code := strict.h.OnUpgrade(&fakeConn{}, "", ""); code != 401 {
		t.Fatalf("anonymous without allow_anonymous: %d", code)
	}
	open := newProto(t, Config{Auth: AuthConfig{Verifier: hsVerifier(t), AllowAnonymous: true}})
	if code := open.h.OnUpgrade(&fakeConn{}, "", ""); code != 0 {
		t.Fatalf("anonymous with allow_anonymous: %d", code)
	}
	if code := open.h.OnUpgrade(&fakeConn{}, "token=forged", ""); code != 401 {
		t.Fatalf("a bad token is refused even with allow_anonymous: %d", code)
	}
}

// BenchmarkUpgrade is the hub's part of an upgrade: finding and verifying
// the token and attaching the identity, for each key type and without auth.
func BenchmarkUpgrade(b *testing.B) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	claims := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(), "channels": []string{"room:*"}}
	sign := func(m jwt.SigningMethod, key any) string {
		s, err := jwt.NewWithClaims(m, claims).SignedString(key)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	for _, c := range []struct {
		name  string
		cfg   auth.Config
		token string
	}{
		{"none", auth.Config{}, ""},
		{"HS256", auth.Config{Secrets: [][]byte{[]byte(upgradeSecret)}}, sign(jwt.SigningMethodHS256, []byte(upgradeSecret))},
		{"RS256", auth.Config{PublicKeys: []crypto.PublicKey{&rsaKey.PublicKey}}, sign(jwt.SigningMethodRS256, rsaKey)},
		{"ES256", auth.Config{PublicKeys: []crypto.PublicKey{&ecKey.PublicKey}}, sign(jwt.SigningMethodES256, ecKey)},
		{"HS256-forged", auth.Config{Secrets: [][]byte{[]byte(upgradeSecret)}}, sign(jwt.SigningMethodHS256, []byte("another-secret-of-32-bytes-or-more"))},
	} {
		b.Run(c.name, func(b *testing.B) {
			cfg := Config{}
			if c.token != "" {
				v, err := auth.New(c.cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer v.Close()
				cfg.Auth = AuthConfig{Verifier: v}
			}
			h, _ := testHub(b, newFakeBroker(), 1, cfg)
			q := "token=" + c.token
			b.ReportAllocs()
			for b.Loop() {
				conn := &fakeConn{}
				h.OnUpgrade(conn, q, "")
			}
		})
	}
}

func TestSlowTokensVerifiedOffTheLoop(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	v, err := auth.New(auth.Config{PublicKeys: []crypto.PublicKey{&ecKey.PublicKey}, Secrets: [][]byte{[]byte(upgradeSecret)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	p := newProto(t, Config{Auth: AuthConfig{Verifier: v, MaxConnsPerUser: 1}})
	es := func(sub string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": sub}).SignedString(ecKey)
		if err != nil {
			t.Fatal(err)
		}
		return "token=" + s
	}
	// An ES256 token is deferred and answered on the loop: accepted, then
	// (same user, cap 1) refused with 429, and a forged one with 401.
	for i, c := range []struct {
		query string
		want  int
	}{{es("alice"), 0}, {es("alice"), 429}, {"token=" + es("bob")[6:len(es("bob"))-4] + "AAAA", 401}} {
		conn := &fakeConn{id: uint64(i + 1), resumed: make(chan int, 1)}
		if code := p.h.OnUpgrade(conn, c.query, ""); code != UpgradeLater {
			t.Fatalf("case %d: OnUpgrade = %d, want UpgradeLater", i, code)
		}
		var got int
		for done := false; !done; {
			runAll(p.loops) // the worker's answer is posted to the loop
			select {
			case got = <-conn.resumed:
				done = true
			case <-time.After(time.Millisecond):
			}
		}
		if got != c.want {
			t.Fatalf("case %d: resumed with %d, want %d", i, got, c.want)
		}
		if got == 0 {
			p.h.OnOpen(conn)
		}
	}
	// An HMAC token is still checked on the loop, at once.
	if code := p.h.OnUpgrade(&fakeConn{id: 9}, "token="+hsToken(t, jwt.MapClaims{"sub": "carol"}), ""); code != 0 {
		t.Fatalf("HS256: %d, want 0 at once", code)
	}
}

func TestSlowAlg(t *testing.T) {
	head := func(h string) string { return base64.RawURLEncoding.EncodeToString([]byte(h)) + ".e30.sig" }
	for tok, want := range map[string]bool{
		head(`{"alg":"RS256","typ":"JWT"}`):    true,
		head(`{"typ":"JWT", "alg" : "ES256"}`): true,
		head(`{"alg":"EdDSA"}`):                true,
		head(`{"alg":"HS256"}`):                false,
		head(`{"alg":"none"}`):                 false,
		head(`{"typ":"JWT"}`):                  false,
		"not a token":                          false,
		"%%%.x.y":                              false,
	} {
		if got := slowAlg(tok); got != want {
			t.Errorf("slowAlg(%q) = %v, want %v", tok, got, want)
		}
	}
	tok := head(`{"alg":"RS256"}`)
	if n := testing.AllocsPerRun(100, func() { slowAlg(tok) }); n != 0 {
		t.Fatalf("slowAlg allocates %v times", n)
	}
}
