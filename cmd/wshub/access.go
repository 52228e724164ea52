package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/wshub/wshub/hub"
	"github.com/wshub/wshub/hub/access"
	"github.com/wshub/wshub/hub/auth"
	"github.com/wshub/wshub/hub/history"
)

// accessConfig is what the hub needs for access control, built from the
// configuration: the token verifier (nil without auth), the namespace
// policy and the rate limits.
type accessConfig struct {
	auth     hub.AuthConfig
	policy   *access.Policy
	limits   hub.RateLimits
	verifier *auth.Verifier // to Close; nil without auth
}

// buildAccess turns the configuration's auth, namespace and limit settings
// into the hub's. It reads the PEM files and, for a JWKS file, the JWKS.
func buildAccess(c *config, log *slog.Logger) (*accessConfig, error) {
	a := &accessConfig{limits: hub.RateLimits{
		CommandsPerSecond: c.CommandsPerSec, CommandBurst: c.CommandsBurst,
		PublishesPerSecond: c.PublishesPerSec, PublishBurst: c.PublishesBurst,
		MaxRejections: c.MaxRejections, RejectionWindow: c.RejectionWindow,
	}}
	if c.authEnabled() {
		v, err := newVerifier(c, log)
		if err != nil {
			return nil, err
		}
		a.verifier = v
		a.auth = hub.AuthConfig{Verifier: v, AllowAnonymous: c.AllowAnonymous, Leeway: c.JWTLeeway, MaxConnsPerUser: c.MaxConnsPerUser}
	}
	p, err := c.policy()
	if err != nil {
		return nil, err
	}
	a.policy = p
	return a, nil
}

// newVerifier builds the JWT verifier from --jwt-* settings.
func newVerifier(c *config, log *slog.Logger) (*auth.Verifier, error) {
	ac := auth.Config{Issuer: c.JWTIssuer, Audience: c.JWTAudience, Leeway: c.JWTLeeway, RequireExp: c.RequireExp,
		JWKS: c.JWTJWKS, Logger: log,
		// Verify runs on an event loop, which must not wait for a JWKS
		// fetch: the token that shows a new kid is refused, its retry finds
		// the key.
		RefetchWait: -1}
	for _, s := range c.JWTSecrets {
		ac.Secrets = append(ac.Secrets, []byte(s))
	}
	for _, f := range c.JWTPublicKeys {
		pemData, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--jwt-public-key: %w", err)
		}
		keys, err := auth.ParsePublicKeys(pemData)
		if err != nil {
			return nil, fmt.Errorf("--jwt-public-key %s: %w", f, err)
		}
		ac.PublicKeys = append(ac.PublicKeys, keys...)
	}
	if ac.Leeway == 0 {
		ac.Leeway = time.Nanosecond // 0 means the default to auth; the user asked for none
	}
	return auth.New(ac)
}

// policy builds the namespace rules: the default namespace, the listed
// ones, and what unlisted namespaces get.
func (c *config) policy() (*access.Policy, error) {
	def, err := c.defaultNamespace().rules("")
	if err != nil {
		return nil, err
	}
	var named []access.Namespace
	for name := range c.Namespaces {
		o, _ := c.namespace(name)
		ns, err := o.rules(name)
		if err != nil {
			return nil, err
		}
		named = append(named, ns)
	}
	return access.NewPolicy(def, named, c.AllowUnknownNamespaces)
}

// rules reads a namespace's options.
func (o namespaceOptions) rules(name string) (access.Namespace, error) {
	sub, err := access.ParseSubscribeMode(o.Subscribe)
	if err != nil {
		return access.Namespace{}, fmt.Errorf("namespace %q: subscribe: %w", name, err)
	}
	pub, err := access.ParsePublishMode(o.Publish)
	if err != nil {
		return access.Namespace{}, fmt.Errorf("namespace %q: publish: %w", name, err)
	}
	pres, err := o.presence()
	if err != nil {
		return access.Namespace{}, fmt.Errorf("namespace %q: %w", name, err)
	}
	return access.Namespace{Name: name, Subscribe: sub, Publish: pub,
		History:     history.Options{Size: o.HistorySize, TTL: o.HistoryTTL},
		RecoveryMax: o.RecoveryMax, Presence: pres}, nil
}
