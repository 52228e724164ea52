package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"
)

func TestNewRefusesBadConfig(t *testing.T) {
	k := testKeys()
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	many := make([][]byte, MaxKeys+1)
	for i := range many {
		many[i] = secretA
	}
	for name, cfg := range map[string]Config{
		"no key source":      {},
		"negative leeway":    {Secrets: [][]byte{secretA}, Leeway: -time.Second},
		"negative refetch":   {JWKS: "http://127.0.0.1:1/jwks", MinRefetch: -time.Second},
		"empty secret":       {Secrets: [][]byte{secretA, {}}},
		"too many secrets":   {Secrets: many},
		"private key":        {PublicKeys: []crypto.PublicKey{k.rsa}},
		"P-521 key":          {PublicKeys: []crypto.PublicKey{&p521.PublicKey}},
		"not a key":          {PublicKeys: []crypto.PublicKey{"key"}},
		"JWKS file missing":  {JWKS: t.TempDir() + "/missing.json"},
		"JWKS file a folder": {JWKS: t.TempDir()},
	} {
		cfg.Logger = quietLogger(t)
		v, err := New(cfg)
		if err == nil {
			v.Close()
			t.Errorf("%s: New succeeded", name)
		} else if !strings.HasPrefix(err.Error(), "auth: ") {
			t.Errorf("%s: error %q does not name the package", name, err)
		}
	}
}

func TestNewWarnsAboutShortSecrets(t *testing.T) {
	log, lines := captureLogger(t)
	newVerifier(t, Config{Secrets: [][]byte{[]byte("dev")}, Logger: log})
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], "shorter than 32 bytes") {
		t.Fatalf("log = %q", got)
	}
}
