package auth

import (
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// key is the jwt.Keyfunc: the key or key set a parsed token is checked with.
// An unknown key asks for one JWKS refetch and, when this call started it,
// looks again once the fetch is done (bounded by Config.RefetchWait).
func (v *Verifier) key(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 section 4.1.11: a header extension the recipient does
		// not understand (e.g. RFC 7797's unencoded payload) must fail.
		return nil, errCrit
	}
	a, ok := algByName(t.Method.Alg())
	if !ok || !v.algs.has(a) { // jwt.WithValidMethods ruled this out already
		return nil, errUnknownKey
	}
	kid, useKid, err := tokenKid(t)
	if err != nil {
		return nil, err
	}
	useKid = useKid && v.jwks != nil
	k, err := v.ring.Load().lookup(a, kid, useKid)
	if err != errUnknownKey || v.jwks == nil {
		return k, err
	}
	done := v.jwks.request()
	if done == nil || v.refetchWait < 0 {
		return nil, err
	}
	wait := time.NewTimer(v.refetchWait)
	defer wait.Stop()
	select {
	case <-done:
	case <-wait.C:
		return nil, err
	}
	return v.ring.Load().lookup(a, kid, useKid)
}

// tokenKid returns the header's kid; an empty kid counts as none.
func tokenKid(t *jwt.Token) (string, bool, error) {
	raw, ok := t.Header["kid"]
	if !ok {
		return "", false, nil
	}
	kid, ok := raw.(string)
	if !ok {
		return "", false, errBadKid
	}
	return kid, kid != "", nil
}
