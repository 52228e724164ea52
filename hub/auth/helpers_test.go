package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Test keys, generated once per test binary: RSA generation is slow under
// -race.
var testKeys = sync.OnceValue(func() (k struct {
	rsa, rsa2 *rsa.PrivateKey
	p256      *ecdsa.PrivateKey
	p384      *ecdsa.PrivateKey
	ed        ed25519.PrivateKey
}) {
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.p256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if k.p384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		panic(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	return k
})

var (
	secretA = []byte("0123456789abcdef0123456789abcdef")
	secretB = []byte("fedcba9876543210fedcba9876543210")
)

// claims is a token payload for tests; sign marshals it as it is.
type claims = map[string]any

// in returns the NumericDate d from now, in whole seconds.
func in(d time.Duration) int64 { return time.Now().Add(d).Unix() }

// sign signs payload with alg and key; header adds or overrides header
// members (a nil value deletes one).
func sign(t testing.TB, alg string, key any, header map[string]any, payload claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(alg), jwt.MapClaims(payload))
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", alg, err)
	}
	return s
}

// signHS signs payload with secretA.
func signHS(t testing.TB, payload claims) string {
	return sign(t, "HS256", secretA, nil, payload)
}

// newVerifier is New that fails the test on error and closes at cleanup.
func newVerifier(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger(t)
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

// wantReason fails unless err is an *Error with reason.
func wantReason(t testing.TB, err error, reason string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want an *Error with reason %q", err, reason)
	}
	if e.Reason != reason {
		t.Fatalf("reason = %q (%v), want %q", e.Reason, err, reason)
	}
}

// mustVerify fails unless v accepts token, and returns its claims.
func mustVerify(t testing.TB, v *Verifier, token string) Claims {
	t.Helper()
	c, err := v.Verify(token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return c
}

// pemOf encodes pub as a PEM "PUBLIC KEY" block.
func pemOf(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// b64 is the JWS segment encoding.
func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// rawHS256 signs payload JSON exactly as written (golang-jwt's encoder would
// normalise it) with secret under header JSON.
func rawHS256(t testing.TB, header, payload string, secret []byte) string {
	t.Helper()
	signing := b64(header) + "." + b64(payload)
	sig, err := jwt.SigningMethodHS256.Sign(signing, secret)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// hsHeader is the header of an HS256 token.
const hsHeader = `{"alg":"HS256","typ":"JWT"}`
