package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Verifier checks tokens against one Config. It is safe for concurrent use.
type Verifier struct {
	parser   *jwt.Parser
	keyfunc  jwt.Keyfunc // v.key, bound once so Verify does not allocate it
	algs     algSet      // what jwt.WithValidMethods was given
	issuer   string
	audience string

	secrets [][]byte
	static  []staticKey
	ring    atomic.Pointer[keyring]
	jwks    *fetcher // nil without Config.JWKS
	log     *slog.Logger

	closeOnce sync.Once
}

// New checks cfg and returns a Verifier. With a JWKS it reads the document
// once before returning (see Config.JWKS for what a failure means) and starts
// the one goroutine that refetches it; Close stops that goroutine.
func New(cfg Config) (*Verifier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	v := &Verifier{issuer: cfg.Issuer, audience: cfg.Audience, log: cfg.Logger}
	for i, s := range cfg.Secrets {
		// A copy: the caller may reuse its buffers.
		v.secrets = append(v.secrets, append([]byte(nil), s...))
		if len(s) < 32 {
			// RFC 7518 section 3.2 asks for a secret at least as long as
			// the hash; shorter ones still work, for development.
			v.log.Warn("auth: HMAC secret shorter than 32 bytes", "secret", i+1, "bytes", len(s))
		}
	}
	if len(cfg.Secrets) > 0 {
		v.algs |= hsAlgs
	}
	for _, k := range cfg.PublicKeys {
		algs, _ := publicKeyAlgs(k) // withDefaults checked it
		v.static = append(v.static, staticKey{key: k, algs: algs})
		v.algs |= algs
	}
	if cfg.JWKS != "" {
		// A JWKS may rotate to any asymmetric key type, so its tokens must
		// reach the key lookup, where an unknown kid triggers a refetch.
		v.algs |= asymmetricAlgs
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.algs.names()),
		jwt.WithLeeway(cfg.Leeway),
		// A token issued in the future means a skewed issuer clock or a
		// forgery; the leeway covers honest skew, as for nbf.
		jwt.WithIssuedAt(),
	}
	if cfg.RequireExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	v.parser = jwt.NewParser(opts...)
	v.keyfunc = v.key
	v.ring.Store(newKeyring(v.secrets, v.static, nil))
	if cfg.JWKS != "" {
		if err := v.startJWKS(cfg); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// startJWKS reads the JWKS once and starts its fetcher.
func (v *Verifier) startJWKS(cfg Config) error {
	load := fileLoader(cfg.JWKS)
	if isURL(cfg.JWKS) {
		load = httpLoader(cfg.HTTPClient, cfg.JWKS)
	}
	install := func(keys []jwksKey) { v.ring.Store(newKeyring(v.secrets, v.static, keys)) }
	log := v.log.With("jwks", redactLocation(cfg.JWKS))
	f := newFetcher(load, install, cfg.MinRefetch, cfg.Refresh, log)
	err := f.fetch()
	if err != nil && !isURL(cfg.JWKS) {
		f.cancel()
		return fmt.Errorf("auth: JWKS file %s: %w", cfg.JWKS, err)
	}
	if err != nil {
		log.Error("auth: JWKS fetch failed at start; retrying in the background", "err", err, "retry_in", cfg.MinRefetch)
	}
	v.jwks = f
	f.start(err == nil)
	return nil
}

// Close stops the JWKS goroutine, if any. Verify keeps working afterwards
// with the keys it has, without refetching. Close may be called more than
// once.
func (v *Verifier) Close() {
	v.closeOnce.Do(func() {
		if v.jwks != nil {
			v.jwks.stop()
		}
	})
}

// Verify checks token and returns its claims, or an *Error saying why it is
// refused. Malformed input is refused before any decoding, without
// allocating.
func (v *Verifier) Verify(token string) (Claims, error) {
	if err := precheck(token); err != nil {
		return Claims{}, err
	}
	var tc tokenClaims
	t, err := v.parser.ParseWithClaims(token, &tc, v.keyfunc)
	if err != nil {
		return Claims{}, refuse(v.reason(t, err), err)
	}
	return v.claims(&tc)
}

// claims applies the checks golang-jwt does not: iss and aud (here so that a
// missing one is an "issuer" or "audience" refusal, not a generic missing
// claim), sub, channels and info.
func (v *Verifier) claims(tc *tokenClaims) (Claims, error) {
	if v.issuer != "" {
		if iss, err := tc.GetIssuer(); err != nil || iss != v.issuer {
			return Claims{}, refuse(ReasonIssuer, errors.New("iss is not the configured issuer"))
		}
	}
	if v.audience != "" {
		if aud, err := tc.GetAudience(); err != nil || !slices.Contains(aud, v.audience) {
			return Claims{}, refuse(ReasonAudience, errors.New("aud does not name the configured audience"))
		}
	}
	sub, err := tc.GetSubject()
	if err != nil || sub == "" {
		return Claims{}, refuse(ReasonSub, errors.New("sub is missing, empty or not a string"))
	}
	c := Claims{Sub: sub}
	if exp, _ := tc.GetExpirationTime(); exp != nil { // decoded already, for golang-jwt's check
		c.Expires = exp.Time
	}
	if c.Channels, c.HasChannels, err = tc.channels(); err != nil {
		return Claims{}, refuse(ReasonClaims, err)
	}
	if c.Info, err = tc.info(); err != nil {
		return Claims{}, refuse(ReasonClaims, err)
	}
	return c, nil
}

// key is the jwt.Keyfunc: the key or key set a parsed token is checked with.
// An unknown key asks for one JWKS refetch and, when this call started it,
// looks again once the fetch is done (bounded by RefetchWait).
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
	if done == nil {
		return nil, err
	}
	wait := time.NewTimer(RefetchWait)
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
