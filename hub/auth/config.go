package auth

import (
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Defaults that a zero Config field takes.
const (
	// DefaultLeeway absorbs clock skew between the token issuer and the
	// gateway on exp, nbf and iat: small, because a token that outlives its
	// exp by more than a second is a token the issuer did not grant.
	DefaultLeeway = time.Second
	// DefaultMinRefetch spaces JWKS fetches: an identity provider publishes a
	// new key before it signs with it, so one fetch per 10 s picks rotations
	// up promptly, and a flood of tokens with made-up kids costs the JWKS
	// server at most 6 requests a minute per gateway.
	DefaultMinRefetch = 10 * time.Second
	// DefaultRefresh is how often the JWKS is refetched without a reason to,
	// so that a key the provider withdrew stops verifying within the hour.
	DefaultRefresh = time.Hour
	// DefaultHTTPTimeout bounds one JWKS request when Config.HTTPClient is nil
	// (or has no timeout of its own).
	DefaultHTTPTimeout = 5 * time.Second
)

// Limits that keep every step of verification bounded.
const (
	// MaxTokenLen is the longest token Verify parses; longer ones are
	// "malformed" before any decoding. A token carrying a few hundred channel
	// patterns fits.
	MaxTokenLen = 8 << 10
	// MaxKeys bounds Config.Secrets, Config.PublicKeys and the keys a token
	// without kid is tried against (per algorithm), so that a forged token
	// costs at most MaxKeys signature checks.
	MaxKeys = 8
	// MaxJWKSKeys is the most keys a JWKS document may hold; a larger one is
	// refused as a whole (identity providers publish a handful).
	MaxJWKSKeys = 64
	// MaxJWKSSize is the largest JWKS document read, file or HTTP body.
	MaxJWKSSize = 1 << 20
	// DefaultRefetchWait is Config.RefetchWait's default.
	DefaultRefetchWait = 500 * time.Millisecond
)

// Config says which tokens a Verifier accepts. At least one of Secrets,
// PublicKeys and JWKS must be set.
type Config struct {
	// Secrets verify HS256, HS384 and HS512 tokens. Several secrets allow
	// rotation: a token verifies when any of them does. At most MaxKeys, none
	// empty.
	Secrets [][]byte
	// PublicKeys verify RS256/384/512 (*rsa.PublicKey), ES256 and ES384
	// (*ecdsa.PublicKey on P-256 or P-384) and EdDSA (ed25519.PublicKey)
	// tokens; ParsePublicKeys reads them from PEM. At most MaxKeys.
	PublicKeys []crypto.PublicKey
	// JWKS is "", an http:// or https:// URL, or the path of a file holding a
	// JWKS document (RFC 7517). Its keys verify RS, ES and EdDSA tokens; a
	// token with a kid is verified only by the JWKS key of that kid. Symmetric
	// ("oct") and private keys in it are ignored. An unknown kid refetches it
	// (a file is read again), at most once per MinRefetch.
	//
	// New reads it once before returning (a URL within the HTTP client's
	// timeout). A file that cannot be read or holds no usable key makes New
	// fail. A URL
	// that cannot be fetched at start does not: the gateway may start before
	// the identity provider, so New logs the error and fetches again after
	// MinRefetch, and meanwhile only Secrets and PublicKeys verify.
	JWKS string
	// Issuer, when set, must equal the token's iss.
	Issuer string
	// Audience, when set, must be the token's aud or one element of it.
	Audience string
	// Leeway is the clock skew allowed on exp, nbf and iat. Zero means
	// DefaultLeeway; negative is an error.
	Leeway time.Duration
	// RequireExp refuses tokens without exp ("claims").
	RequireExp bool
	// HTTPClient fetches a JWKS URL; nil means a client with
	// DefaultHTTPTimeout.
	HTTPClient *http.Client
	// MinRefetch is the shortest time between two JWKS fetches, whatever
	// causes them. Zero means DefaultMinRefetch; negative is an error.
	MinRefetch time.Duration
	// Refresh is how often the JWKS is fetched again even when every kid is
	// known, so that withdrawn keys stop verifying; a failed fetch is retried
	// after MinRefetch. Zero means DefaultRefresh; negative means only
	// unknown kids refetch. It is never shorter than MinRefetch.
	Refresh time.Duration
	// Logger receives JWKS fetch failures and skipped keys. Nil means
	// slog.Default().
	Logger *slog.Logger
	// RefetchWait is how long the one Verify call whose unknown kid starts a
	// JWKS refetch waits for it before giving up with "unknown_key" (0:
	// DefaultRefetchWait; negative: never wait). Other calls never wait for
	// the network. A caller on an event loop that must never block passes
	// a negative wait: the token that revealed a new key is refused, and the
	// client's retry finds the key fetched.
	RefetchWait time.Duration
}

// withDefaults checks c and fills its zero fields.
func (c Config) withDefaults() (Config, error) {
	if len(c.Secrets) == 0 && len(c.PublicKeys) == 0 && c.JWKS == "" {
		return c, errors.New("auth: no key source: set Secrets, PublicKeys or JWKS")
	}
	if len(c.Secrets) > MaxKeys || len(c.PublicKeys) > MaxKeys {
		return c, fmt.Errorf("auth: at most %d secrets and %d public keys", MaxKeys, MaxKeys)
	}
	for i, s := range c.Secrets {
		if len(s) == 0 {
			return c, fmt.Errorf("auth: secret %d is empty", i+1)
		}
	}
	for i, k := range c.PublicKeys {
		if _, err := publicKeyAlgs(k); err != nil {
			return c, fmt.Errorf("auth: public key %d: %w", i+1, err)
		}
	}
	switch {
	case c.Leeway < 0:
		return c, fmt.Errorf("auth: negative leeway %v", c.Leeway)
	case c.Leeway == 0:
		c.Leeway = DefaultLeeway
	}
	switch {
	case c.MinRefetch < 0:
		return c, fmt.Errorf("auth: negative MinRefetch %v", c.MinRefetch)
	case c.MinRefetch == 0:
		c.MinRefetch = DefaultMinRefetch
	}
	if c.RefetchWait == 0 {
		c.RefetchWait = DefaultRefetchWait
	}
	switch {
	case c.Refresh == 0:
		c.Refresh = DefaultRefresh
	case c.Refresh > 0 && c.Refresh < c.MinRefetch:
		c.Refresh = c.MinRefetch
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}
