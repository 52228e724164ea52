package auth

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// parseJWKS decodes a JWKS document into its usable keys. Keys this package
// cannot use (other kty or curve, private or symmetric material, "use" other
// than "sig", an "alg" that does not fit the key) are skipped, as RFC 7517
// section 5 asks, and returned as skipped for the log. A document without a
// single usable key is an error: installing it would refuse every token, and
// it is likelier to be a broken deployment than a wish.
func parseJWKS(data []byte) (keys []jwksKey, skipped []error, err error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("JWKS is not a JSON object with a keys array: %w", err)
	}
	if len(doc.Keys) > MaxJWKSKeys {
		return nil, nil, fmt.Errorf("JWKS has %d keys, more than %d", len(doc.Keys), MaxJWKSKeys)
	}
	for i, raw := range doc.Keys {
		k, err := parseJWK(raw)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("key %d: %w", i, err))
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, skipped, fmt.Errorf("JWKS has no usable key (%d skipped)", len(skipped))
	}
	return keys, skipped, nil
}

// jwkHeader holds the members of a JWK that are checked before go-jose sees
// it: go-jose accepts private keys, whose RSA precomputation is costly and
// which a verifier has no business holding.
type jwkHeader struct {
	Kty  string          `json:"kty"`
	Kid  string          `json:"kid"`
	Use  string          `json:"use"`
	Alg  string          `json:"alg"`
	D    json.RawMessage `json:"d"`
	P    json.RawMessage `json:"p"`
	Q    json.RawMessage `json:"q"`
	Dp   json.RawMessage `json:"dp"`
	Dq   json.RawMessage `json:"dq"`
	Qi   json.RawMessage `json:"qi"`
	K    json.RawMessage `json:"k"`
	Priv json.RawMessage `json:"priv"`
}

// parseJWK decodes one public signing key.
func parseJWK(raw json.RawMessage) (jwksKey, error) {
	var h jwkHeader
	if err := json.Unmarshal(raw, &h); err != nil {
		return jwksKey{}, err
	}
	switch {
	case h.Kty == "oct" || h.K != nil:
		return jwksKey{}, errors.New("symmetric key (HMAC secrets belong in Config.Secrets)")
	case h.D != nil || h.P != nil || h.Q != nil || h.Dp != nil || h.Dq != nil || h.Qi != nil || h.Priv != nil:
		return jwksKey{}, fmt.Errorf("kid %q holds private key material", h.Kid)
	case h.Use != "" && h.Use != "sig":
		return jwksKey{}, fmt.Errorf("kid %q is for use %q, not sig", h.Kid, h.Use)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		return jwksKey{}, fmt.Errorf("kid %q: %w", h.Kid, err)
	}
	algs, err := publicKeyAlgs(jwk.Key)
	if err != nil {
		return jwksKey{}, fmt.Errorf("kid %q: %w", h.Kid, err)
	}
	if h.Alg != "" {
		a, ok := algByName(h.Alg)
		if !ok || !algs.has(a) {
			return jwksKey{}, fmt.Errorf("kid %q: alg %q does not fit a %s key", h.Kid, h.Alg, h.Kty)
		}
		algs = 1 << a
	}
	return jwksKey{kid: jwk.KeyID, key: jwk.Key, algs: algs}, nil
}
