package auth

import (
	"errors"

	"github.com/golang-jwt/jwt/v5"
)

// Refusals of precheck, allocated once: junk costs nothing.
var (
	errEmpty    = &Error{Reason: ReasonMalformed, Err: errors.New("empty token")}
	errTooLong  = &Error{Reason: ReasonMalformed, Err: errors.New("token longer than 8 KiB")}
	errSegments = &Error{Reason: ReasonMalformed, Err: errors.New("token is not three dot-separated segments")}
	errAlphabet = &Error{Reason: ReasonMalformed, Err: errors.New("token has a byte outside base64url")}
)

// precheck refuses what cannot be a compact JWS before golang-jwt decodes
// anything: empty, longer than MaxTokenLen, not exactly two dots, an empty
// header or payload, or a byte outside the base64url alphabet. The signature
// may be empty: that is alg "none", refused later as "algorithm".
func precheck(token string) *Error {
	switch {
	case token == "":
		return errEmpty
	case len(token) > MaxTokenLen:
		return errTooLong
	}
	dots, last := 0, -1
	for i := 0; i < len(token); i++ {
		c := token[i]
		if c == '.' {
			if i == last+1 { // an empty header or payload
				return errSegments
			}
			dots++
			last = i
			continue
		}
		if !base64URL[c] {
			return errAlphabet
		}
	}
	if dots != 2 {
		return errSegments
	}
	return nil
}

// base64URL marks the bytes of the unpadded base64url alphabet.
var base64URL = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") {
		t[c] = true
	}
	return t
}()

// reason maps a golang-jwt error to a Reason. t is what ParseWithClaims
// returned with it (nil or partly parsed).
func (v *Verifier) reason(t *jwt.Token, err error) string {
	switch {
	// The key lookup's own errors first: golang-jwt wraps them in
	// ErrTokenUnverifiable.
	case errors.Is(err, errUnknownKey):
		return ReasonUnknownKey
	case errors.Is(err, errKeyType):
		return ReasonAlgorithm
	case errors.Is(err, errBadKid), errors.Is(err, errCrit):
		return ReasonMalformed
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ReasonMalformed
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// alg missing, not a string, or unknown to golang-jwt.
		return ReasonAlgorithm
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		// golang-jwt reports an alg outside WithValidMethods ("none"
		// included) as a bad signature.
		if t == nil || t.Method == nil {
			return ReasonAlgorithm
		}
		if a, ok := algByName(t.Method.Alg()); !ok || !v.algs.has(a) {
			return ReasonAlgorithm
		}
		return ReasonSignature
	// Claims: a wrong type first, then time, in the order golang-jwt checks.
	case errors.Is(err, errClaimShape):
		return ReasonClaims
	case errors.Is(err, jwt.ErrTokenExpired):
		return ReasonExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return ReasonNotYetValid
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ReasonIssuedInFuture
	}
	// jwt.ErrTokenRequiredClaimMissing (exp with RequireExp), or anything
	// golang-jwt adds later.
	return ReasonClaims
}
