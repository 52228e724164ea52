package auth

import (
	"fmt"
	"log/slog"
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
	// refetchWait is Config.RefetchWait: negative, never wait for a fetch.
	refetchWait time.Duration
	log         *slog.Logger

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
	v := &Verifier{issuer: cfg.Issuer, audience: cfg.Audience, log: cfg.Logger, refetchWait: cfg.RefetchWait}
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
// refused. What cannot be a token at all (empty, longer than MaxTokenLen, not
// three base64url segments) is refused before any decoding, without
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
