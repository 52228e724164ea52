package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// alg indexes the signature algorithms a Verifier knows.
type alg uint8

const (
	hs256 alg = iota
	hs384
	hs512
	rs256
	rs384
	rs512
	es256
	es384
	edDSA
	numAlgs
)

// algNames are the JWS "alg" values, by alg.
var algNames = [numAlgs]string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA"}

// algSet is a set of algs, one bit each.
type algSet uint16

const (
	hsAlgs         = algSet(1<<hs256 | 1<<hs384 | 1<<hs512)
	rsAlgs         = algSet(1<<rs256 | 1<<rs384 | 1<<rs512)
	asymmetricAlgs = rsAlgs | 1<<es256 | 1<<es384 | 1<<edDSA
)

func (s algSet) has(a alg) bool { return s&(1<<a) != 0 }

// names lists the algorithms of s, for jwt.WithValidMethods.
func (s algSet) names() []string {
	var out []string
	for a := range numAlgs {
		if s.has(a) {
			out = append(out, algNames[a])
		}
	}
	return out
}

// algByName returns the alg called name.
func algByName(name string) (alg, bool) {
	for a, n := range algNames {
		if n == name {
			return alg(a), true
		}
	}
	return 0, false
}

// publicKeyAlgs returns the algorithms key can verify, or an error for a key
// type golang-jwt cannot verify with (or that RFC 7518 does not pair with
// any algorithm this package accepts).
func publicKeyAlgs(key crypto.PublicKey) (algSet, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return 0, errors.New("empty RSA key")
		}
		return rsAlgs, nil
	case *ecdsa.PublicKey:
		if k == nil {
			return 0, errors.New("empty ECDSA key")
		}
		switch k.Curve {
		case elliptic.P256():
			return 1 << es256, nil
		case elliptic.P384():
			return 1 << es384, nil
		}
		return 0, errors.New("ECDSA key not on P-256 or P-384")
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return 0, errors.New("wrong size for an Ed25519 key")
		}
		return 1 << edDSA, nil
	}
	return 0, fmt.Errorf("unsupported key type %T (want an RSA, ECDSA or Ed25519 public key)", key)
}

// jwksKey is one usable key of a JWKS document.
type jwksKey struct {
	kid  string
	key  crypto.PublicKey
	algs algSet // what the key type allows, narrowed by the JWK's "alg"
}

// keyring is an immutable snapshot of every key a Verifier holds; a JWKS
// refetch builds a new one and swaps it in, so Verify reads without locks.
type keyring struct {
	// tries holds, per alg, the jwt.VerificationKeySet that a token without
	// kid is checked against (boxed once here, so Verify does not allocate
	// it), or nil when no key fits that alg.
	tries [numAlgs]any
	// byKid holds the JWKS keys that have a kid. RFC 7517 asks for distinct
	// kids; where two keys share one, the first that fits the alg wins.
	byKid map[string][]jwksKey
}

// staticKey is one of Config.PublicKeys with the algorithms it verifies.
type staticKey struct {
	key  crypto.PublicKey
	algs algSet
}

// newKeyring combines the configured secrets and public keys with the
// current JWKS keys. Secrets stand alone for HS algorithms: an HMAC secret is
// never tried on an RS/ES/EdDSA token nor a public key on an HS one.
func newKeyring(secrets [][]byte, static []staticKey, jwks []jwksKey) *keyring {
	r := &keyring{byKid: make(map[string][]jwksKey)}
	for a := range numAlgs {
		var keys []jwt.VerificationKey
		if hsAlgs.has(a) {
			for _, s := range secrets {
				keys = append(keys, s)
			}
		} else {
			for _, k := range static {
				if k.algs.has(a) {
					keys = append(keys, k.key)
				}
			}
			for _, k := range jwks {
				if k.algs.has(a) {
					keys = append(keys, k.key)
				}
			}
		}
		if len(keys) > MaxKeys {
			// Configured keys come first; JWKS keys past the bound still
			// verify tokens that name their kid.
			keys = keys[:MaxKeys]
		}
		if len(keys) > 0 {
			r.tries[a] = jwt.VerificationKeySet{Keys: keys}
		}
	}
	for _, k := range jwks {
		if k.kid != "" {
			r.byKid[k.kid] = append(r.byKid[k.kid], k)
		}
	}
	return r
}

// errors the key lookup reports through golang-jwt's Keyfunc.
var (
	errUnknownKey = errors.New("no key for the token's kid and alg")
	errKeyType    = errors.New("the key of the token's kid does not fit its alg")
	errBadKid     = errors.New("kid is not a string")
	errCrit       = errors.New(`header has "crit" extensions, none of which are supported`)
)

// lookup returns the key or key set for a token of alg a. With a kid and a
// JWKS configured, only the JWKS key of that kid will do.
func (r *keyring) lookup(a alg, kid string, useKid bool) (any, error) {
	if useKid && !hsAlgs.has(a) {
		ks, ok := r.byKid[kid]
		if !ok {
			return nil, errUnknownKey
		}
		for _, k := range ks {
			if k.algs.has(a) {
				return k.key, nil
			}
		}
		return nil, errKeyType
	}
	if r.tries[a] == nil {
		return nil, errUnknownKey
	}
	return r.tries[a], nil
}
