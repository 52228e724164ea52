package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/wshub/wshub/hub/access"
)

// Mint signs a token that a Verifier with secret among its Secrets accepts:
// for the `wshub token` development command and the load generator, not for
// production issuers. alg is HS256, HS384 or HS512; sub must not be empty;
// channels, when not nil, become the "channels" claim (each must pass
// access.ValidPattern; an empty non-nil list allows no channel); ttl > 0 sets exp to
// now+ttl and 0 leaves exp out; info, when not nil, must be a JSON object. iat
// is now.
func Mint(secret []byte, alg string, sub string, channels []string, ttl time.Duration, info json.RawMessage) (string, error) {
	a, ok := algByName(alg)
	if !ok || !hsAlgs.has(a) {
		return "", fmt.Errorf("auth: Mint signs HS256, HS384 or HS512, not %q", alg)
	}
	switch {
	case len(secret) == 0:
		return "", errors.New("auth: empty secret")
	case sub == "":
		return "", errors.New("auth: empty sub")
	case ttl < 0:
		return "", fmt.Errorf("auth: negative ttl %v", ttl)
	}
	now := time.Now()
	claims := jwt.MapClaims{"sub": sub, "iat": jwt.NewNumericDate(now)}
	if ttl > 0 {
		claims["exp"] = jwt.NewNumericDate(now.Add(ttl))
	}
	if channels != nil {
		for i, p := range channels {
			if !access.ValidPattern(p) {
				return "", fmt.Errorf("auth: channels[%d] %q is not a channel name, prefix:* or *", i, p)
			}
		}
		claims["channels"] = channels
	}
	if info != nil {
		if !json.Valid(info) || firstByte(info) != '{' {
			return "", errors.New("auth: info is not a JSON object")
		}
		claims["info"] = info
	}
	token, err := jwt.NewWithClaims(jwt.GetSigningMethod(alg), claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	if len(token) > MaxTokenLen {
		return "", fmt.Errorf("auth: token of %d bytes is longer than the %d a Verifier accepts", len(token), MaxTokenLen)
	}
	return token, nil
}

// firstByte returns the first byte of b that is not JSON white space, or 0.
func firstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}
