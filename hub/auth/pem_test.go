package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestAsymmetricFromPEM(t *testing.T) {
	k := testKeys()
	certDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "issuer"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "issuer"}}, &k.rsa2.PublicKey, k.rsa2)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, alg string
		pem       []byte
		key       any
	}{
		{"RS256 PKIX", "RS256", pemOf(t, &k.rsa.PublicKey), k.rsa},
		{"RS384 PKCS1", "RS384", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)}), k.rsa},
		{"RS512 certificate", "RS512", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}), k.rsa2},
		{"ES256", "ES256", pemOf(t, &k.p256.PublicKey), k.p256},
		{"ES384", "ES384", pemOf(t, &k.p384.PublicKey), k.p384},
		{"EdDSA", "EdDSA", pemOf(t, k.ed.Public()), k.ed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			keys, err := ParsePublicKeys(c.pem)
			if err != nil {
				t.Fatal(err)
			}
			v := newVerifier(t, Config{PublicKeys: keys})
			got := mustVerify(t, v, sign(t, c.alg, c.key, nil, claims{"sub": "u1", "exp": in(time.Minute)}))
			if got.Sub != "u1" {
				t.Fatalf("sub = %q", got.Sub)
			}
			// Tampered payload: the signature no longer holds.
			tok := sign(t, c.alg, c.key, nil, claims{"sub": "u1"})
			parts := strings.Split(tok, ".")
			_, err = v.Verify(parts[0] + "." + b64(`{"sub":"admin"}`) + "." + parts[2])
			wantReason(t, err, ReasonSignature)
		})
	}
}

func TestPublicKeyRotationWithoutKid(t *testing.T) {
	k := testKeys()
	keys, err := ParsePublicKeys(append(pemOf(t, &k.rsa2.PublicKey), pemOf(t, &k.rsa.PublicKey)...))
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys = %d, err = %v", len(keys), err)
	}
	v := newVerifier(t, Config{PublicKeys: keys})
	mustVerify(t, v, sign(t, "RS256", k.rsa, nil, claims{"sub": "old"}))
	mustVerify(t, v, sign(t, "RS256", k.rsa2, nil, claims{"sub": "new"}))
	// kid is ignored when there is no JWKS to look it up in.
	mustVerify(t, v, sign(t, "RS256", k.rsa, map[string]any{"kid": "whatever"}, claims{"sub": "u"}))

	only := newVerifier(t, Config{PublicKeys: keys[:1]})
	_, err = only.Verify(sign(t, "RS256", k.rsa, nil, claims{"sub": "u"}))
	wantReason(t, err, ReasonSignature)
}

func TestParsePublicKeysRefuses(t *testing.T) {
	k := testKeys()
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(k.p256)
	if err != nil {
		t.Fatal(err)
	}
	one := pemOf(t, &k.p256.PublicKey)
	for name, in := range map[string][]byte{
		"empty":         nil,
		"not PEM":       []byte("-----BEGIN NOTHING"),
		"private key":   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}),
		"P-521":         pemOf(t, &p521.PublicKey),
		"garbage DER":   pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("nope")}),
		"too many keys": bytes.Repeat(one, MaxKeys+1),
		"a good key then a private one": append(append([]byte(nil), one...),
			pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})...),
	} {
		if keys, err := ParsePublicKeys(in); err == nil {
			t.Errorf("%s: got %d keys, want an error", name, len(keys))
		}
	}
	if keys, err := ParsePublicKeys(bytes.Repeat(one, MaxKeys)); err != nil || len(keys) != MaxKeys {
		t.Fatalf("MaxKeys keys: %d, %v", len(keys), err)
	}
}
