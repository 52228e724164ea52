package auth

import (
	"crypto"
	"strings"
	"testing"
	"time"
)

// BenchmarkVerify measures one Verify per algorithm on a typical gateway
// token, and the refusals that a flood of bad tokens would cost.
func BenchmarkVerify(b *testing.B) {
	k := testKeys()
	payload := claims{"sub": "user-1234", "exp": in(time.Hour), "iat": in(0), "channels": []string{"room:*", "news"}}
	hs := newVerifier(b, Config{Secrets: [][]byte{secretA}})
	good := signHS(b, payload)
	bad := good[:strings.LastIndexByte(good, '.')] + "." + strings.Repeat("A", 43)
	cases := []struct {
		name  string
		v     *Verifier
		token string
		ok    bool
	}{
		{"HS256", hs, good, true},
		{"RS256", newVerifier(b, Config{PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey}}), sign(b, "RS256", k.rsa, nil, payload), true},
		{"ES256", newVerifier(b, Config{PublicKeys: []crypto.PublicKey{&k.p256.PublicKey}}), sign(b, "ES256", k.p256, nil, payload), true},
		{"EdDSA", newVerifier(b, Config{PublicKeys: []crypto.PublicKey{k.ed.Public()}}), sign(b, "EdDSA", k.ed, nil, payload), true},
		{"HS256-bad-signature", hs, bad, false},
		{"malformed", hs, strings.Replace(good, ".", "", 1), false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.v.Verify(c.token); (err == nil) != c.ok {
					b.Fatal(err)
				}
			}
		})
	}
}
