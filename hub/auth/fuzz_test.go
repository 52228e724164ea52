package auth

import (
	"crypto"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wshub/wshub/hub/access"
)

// FuzzToken feeds Verify arbitrary tokens, and arbitrary payloads signed with
// a configured secret so that the claim checks behind the signature are
// reached too. Verify must not panic, must refuse with a known reason, and
// must only accept claims that keep the package's promises.
func FuzzToken(f *testing.F) {
	k := testKeys()
	ok := claims{"sub": "u1", "exp": in(time.Hour), "channels": []string{"room:*"}, "info": map[string]any{"a": 1}}
	for _, tok := range []string{
		signHS(f, ok),
		sign(f, "EdDSA", k.ed, nil, ok),
		sign(f, "EdDSA", k.ed, kidHeader("d1"), ok),
		sign(f, "EdDSA", k.ed, kidHeader("nope"), ok),
		b64(`{"alg":"none"}`) + "." + b64(`{"sub":"u1"}`) + ".",
		"a.b.c", "..", "", strings.Repeat("A", MaxTokenLen+1),
	} {
		f.Add(tok, []byte(`{"sub":"u1"}`))
	}
	for _, p := range []string{
		`{"sub":"u1","exp":1e300,"nbf":-1e300,"iat":1.5}`,
		`{"sub":"u1","channels":["*","a:*",""],"info":{"x":[1,{"y":null}]}}`,
		`{"sub":"u1","aud":["a",1],"iss":{},"channels":null}`,
		`{"sub":"u1","exp":"1"}`, `[]`, `null`, `{"sub":"\u0000"}`,
	} {
		f.Add("", []byte(p))
	}

	v := newVerifier(f, Config{
		Secrets:    [][]byte{secretA},
		PublicKeys: []crypto.PublicKey{k.ed.Public()},
		JWKS:       writeFile(f, jwksDoc(f, jwk{"d1", "", k.ed.Public()})),
		MinRefetch: time.Hour, // no file rereads while fuzzing
	})
	reasons := Reasons()
	f.Fuzz(func(t *testing.T, token string, payload []byte) {
		check(t, v, reasons, token)
		check(t, v, reasons, rawHS256(t, hsHeader, string(payload), secretA))
	})
}

// check verifies token and holds the result to the package's promises.
func check(t *testing.T, v *Verifier, reasons []string, token string) {
	c, err := v.Verify(token)
	if err != nil {
		r := ReasonOf(err)
		if !slices.Contains(reasons, r) {
			t.Fatalf("reason %q (%v) is not one of Reasons()", r, err)
		}
		if len(token) > MaxTokenLen && r != ReasonMalformed {
			t.Fatalf("a %d-byte token was parsed: %v", len(token), err)
		}
		return
	}
	if len(token) > MaxTokenLen {
		t.Fatalf("accepted a %d-byte token", len(token))
	}
	if c.Sub == "" {
		t.Fatal("accepted an empty sub")
	}
	if c.HasChannels != (c.Channels != nil) {
		t.Fatalf("HasChannels %v with channels %q", c.HasChannels, c.Channels)
	}
	for _, p := range c.Channels {
		if !access.ValidPattern(p) {
			t.Fatalf("accepted channel pattern %q", p)
		}
	}
	if c.Info != nil && c.Info[0] != '{' {
		t.Fatalf("accepted info %s", c.Info)
	}
}
