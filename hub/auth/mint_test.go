package auth

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMintRoundTrip(t *testing.T) {
	v := newVerifier(t, Config{Secrets: [][]byte{secretA}, RequireExp: true})
	for _, alg := range []string{"HS256", "HS384", "HS512"} {
		tok, err := Mint(secretA, alg, "u1", []string{"room:*", "news"}, time.Minute, json.RawMessage(` {"name": "Ann"}`))
		if err != nil {
			t.Fatal(err)
		}
		c := mustVerify(t, v, tok)
		if c.Sub != "u1" || !slices.Equal(c.Channels, []string{"room:*", "news"}) || string(c.Info) != `{"name":"Ann"}` {
			t.Fatalf("%s: %+v", alg, c)
		}
		if left := time.Until(c.Expires); left <= 58*time.Second || left > time.Minute {
			t.Fatalf("%s: expires in %v", alg, left)
		}
	}

	tok, err := Mint(secretA, "HS256", "u1", []string{}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := mustVerify(t, newVerifier(t, Config{Secrets: [][]byte{secretA}}), tok)
	if !c.Expires.IsZero() || !c.HasChannels || len(c.Channels) != 0 || c.Info != nil {
		t.Fatalf("no ttl, empty channels: %+v", c)
	}
	_, err = v.Verify(tok)
	wantReason(t, err, ReasonClaims) // RequireExp
}

func TestMintRefuses(t *testing.T) {
	for name, f := range map[string]func() (string, error){
		"RS256":         func() (string, error) { return Mint(secretA, "RS256", "u", nil, 0, nil) },
		"none":          func() (string, error) { return Mint(secretA, "none", "u", nil, 0, nil) },
		"empty secret":  func() (string, error) { return Mint(nil, "HS256", "u", nil, 0, nil) },
		"empty sub":     func() (string, error) { return Mint(secretA, "HS256", "", nil, 0, nil) },
		"negative ttl":  func() (string, error) { return Mint(secretA, "HS256", "u", nil, -time.Second, nil) },
		"bad pattern":   func() (string, error) { return Mint(secretA, "HS256", "u", []string{"room*"}, 0, nil) },
		"info an array": func() (string, error) { return Mint(secretA, "HS256", "u", nil, 0, json.RawMessage(`[1]`)) },
		"info not JSON": func() (string, error) { return Mint(secretA, "HS256", "u", nil, 0, json.RawMessage(`{`)) },
		"longer than 8KB": func() (string, error) {
			return Mint(secretA, "HS256", "u", nil, 0, json.RawMessage(`{"x":"`+strings.Repeat("x", MaxTokenLen)+`"}`))
		},
	} {
		if tok, err := f(); err == nil {
			t.Errorf("%s: minted %q", name, tok)
		}
	}
}
