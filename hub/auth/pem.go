package auth

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ParsePublicKeys reads every PEM block of pemData: "PUBLIC KEY" (PKIX),
// "RSA PUBLIC KEY" (PKCS #1) and "CERTIFICATE" (its subject key; the
// certificate's validity and chain are not checked: it only carries the key).
// Each key must be RSA, ECDSA P-256 or P-384, or Ed25519, and there may be at
// most MaxKeys. Any other block, private keys included, is an error, so that a
// misplaced file is noticed instead of half used.
func ParsePublicKeys(pemData []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	rest := pemData
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		key, err := parsePEMBlock(block)
		if err != nil {
			return nil, fmt.Errorf("auth: PEM block %d (%s): %w", len(keys)+1, block.Type, err)
		}
		if _, err := publicKeyAlgs(key); err != nil {
			return nil, fmt.Errorf("auth: PEM block %d (%s): %w", len(keys)+1, block.Type, err)
		}
		if len(keys) == MaxKeys {
			return nil, fmt.Errorf("auth: more than %d public keys", MaxKeys)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("auth: no PEM public key, RSA public key or certificate found")
	}
	return keys, nil
}

// parsePEMBlock decodes one block into its public key.
func parsePEMBlock(b *pem.Block) (crypto.PublicKey, error) {
	switch b.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(b.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(b.Bytes)
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	}
	return nil, errors.New("not a public key or certificate")
}
