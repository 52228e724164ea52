package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/wshub/wshub/eventloop"
	"github.com/wshub/wshub/redis"
	"github.com/wshub/wshub/wsproto"
)

// checker collects validation errors, each naming its setting by where its
// value came from (config.name): "--loops must ...", "wshub.yaml:7: loops
// must ...".
type checker struct {
	c    *config
	errs []error
}

func (k *checker) check(ok bool, key, format string, a ...any) {
	if !ok {
		k.errs = append(k.errs, fmt.Errorf("%s %s", k.c.name(key), fmt.Sprintf(format, a...)))
	}
}

// validate checks every setting, whichever of flags, environment and file it
// came from, and reports every problem at once.
func (c *config) validate() error {
	k := &checker{c: c}
	k.check(c.Addr != "", "addr", "must not be empty")
	k.check(c.Loops >= 0 && c.Loops <= 256, "loops", "must be between 0 (one per core) and 256, got %d", c.Loops)
	k.check(c.ReadBuffer >= 4<<10, "read_buffer", "must be at least 4096 bytes, got %d", c.ReadBuffer)
	k.check(c.WriteBuffer >= 1<<10, "write_buffer", "must be at least 1024 bytes, got %d", c.WriteBuffer)
	k.check(c.SendQueue >= 1 && c.SendQueue <= eventloop.MaxSendQueue, "send_queue", "must be between 1 and %d frames, got %d", eventloop.MaxSendQueue, c.SendQueue)
	k.check(c.MaxPending >= 4<<10, "max_pending", "must be at least 4096 bytes, got %d", c.MaxPending)
	k.check(c.MaxMessage >= 125 && c.MaxMessage <= 64<<20, "max_message", "must be between 125 bytes and 64 MiB, got %d", c.MaxMessage)
	k.check(c.MaxPublish >= 0, "max_publish", "must not be negative, got %d", c.MaxPublish)
	k.check(c.MaxSubs >= 1 && c.MaxSubs <= 1<<20, "max_subscriptions", "must be between 1 and 1048576, got %d", c.MaxSubs)
	k.check(c.MaxConns >= 0, "max_conns", "must not be negative, got %d", c.MaxConns)
	k.check(c.MaxPartial >= eventloop.MinPartialBytes(c.MaxMessage), "max_partial_bytes", "must hold one largest message (at least %d for %s %d), got %d",
		eventloop.MinPartialBytes(c.MaxMessage), c.name("max_message"), c.MaxMessage, c.MaxPartial)
	k.check(c.CompressionMinSize >= 0, "compression_min_size", "must not be negative, got %d", c.CompressionMinSize)
	k.check(c.MaxFragments >= 1 && c.MaxFragments <= wsproto.MaxFragmentsCeiling, "max_fragments", "must be between 1 and %d, got %d", wsproto.MaxFragmentsCeiling, c.MaxFragments)
	k.check(c.MaxPongsPerRead >= 1 && c.MaxPongsPerRead <= eventloop.MaxPongsPerReadCeiling, "max_pongs_per_read", "must be between 1 and %d, got %d", eventloop.MaxPongsPerReadCeiling, c.MaxPongsPerRead)
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"message_timeout", c.MessageTimeout}, {"ping_interval", c.PingInterval}, {"pong_timeout", c.PongTimeout},
		{"handshake_timeout", c.HandshakeTime}, {"shutdown_timeout", c.ShutdownTimeout},
	} {
		k.check(d.v > 0, d.key, "must be positive, got %v", d.v)
	}
	k.check(c.LogFormat == "text" || c.LogFormat == "json", "log.format", "must be text or json, got %q", c.LogFormat)
	_, lerr := parseLevel(c.LogLevel)
	k.check(lerr == nil, "log.level", "must be debug, info, warn or error, got %q", c.LogLevel)
	c.validateAdmin(k)
	c.validateRedis(k)
	c.validateAuth(k)
	c.validateLimits(k)
	k.errs = append(k.errs, c.validateNamespaces()...)
	return errors.Join(k.errs...)
}

// validateRedis checks the scale-out settings.
func (c *config) validateRedis(k *checker) {
	k.check(c.Redis == "" || len(c.RedisCluster) == 0, "redis.url", "and %s are exclusive: give one (standalone URL or cluster seed nodes)", c.name("redis.cluster"))
	if c.Redis != "" {
		err := redis.ValidateURL(c.Redis)
		k.check(err == nil, "redis.url", "%q: %v (want redis://host:port)", c.Redis, err)
	}
	for _, a := range c.RedisCluster {
		_, port, err := net.SplitHostPort(a)
		if err == nil {
			_, err = strconv.ParseUint(port, 10, 16)
		}
		k.check(err == nil, "redis.cluster", "%q is not host:port", a)
	}
	if err := redis.ValidateInstanceID(c.InstanceID); err != nil {
		k.check(false, "instance_id", "%v", err)
	}
	k.check(!c.Registry || c.redisEnabled(), "redis.registry", "needs %s or %s (the registry lives in Redis)", c.name("redis.url"), c.name("redis.cluster"))
	k.check(c.HeartbeatInterval >= 100*time.Millisecond, "redis.heartbeat_interval", "must be at least 100ms, got %v", c.HeartbeatInterval)
	k.check(c.RegistryTTL >= 3*time.Second && c.RegistryTTL >= 3*c.HeartbeatInterval,
		"redis.registry_ttl", "must be at least 3s and 3 heartbeat intervals, got %v", c.RegistryTTL)
	k.check(c.ProbeInterval >= 10*time.Millisecond, "redis.probe_interval", "must be at least 10ms, got %v", c.ProbeInterval)
	k.check(c.ProbeTimeout >= 10*time.Millisecond, "redis.probe_timeout", "must be at least 10ms, got %v", c.ProbeTimeout)
}

// validateAuth checks client authentication. A setting that only means
// something with JWT keys is an error without them rather than ignored.
func (c *config) validateAuth(k *checker) {
	for _, l := range []struct {
		key  string
		list []string
	}{{"auth.jwt_secret", c.JWTSecrets}, {"auth.jwt_public_key", c.JWTPublicKeys}, {"admin.api_keys", c.AdminAPIKeys}} {
		for _, e := range l.list {
			k.check(strings.TrimSpace(e) != "", l.key, "has an empty entry")
		}
	}
	k.check(c.JWTLeeway >= 0, "auth.jwt_leeway", "must not be negative, got %v", c.JWTLeeway)
	k.check(c.MaxConnsPerUser >= 0, "auth.max_conns_per_user", "must not be negative (0: no limit), got %d", c.MaxConnsPerUser)
	if c.authEnabled() {
		return
	}
	for _, s := range []struct {
		key string
		set bool
	}{
		{"auth.jwt_issuer", c.JWTIssuer != ""}, {"auth.jwt_audience", c.JWTAudience != ""},
		{"auth.allow_anonymous", c.AllowAnonymous}, {"auth.require_exp", c.RequireExp},
		{"auth.max_conns_per_user", c.MaxConnsPerUser != 0},
	} {
		k.check(!s.set, s.key, "needs client authentication: set %s", authKeys)
	}
}

// authKeys is what configures client authentication, for errors.
const authKeys = "auth.jwt_secret (--jwt-secret), auth.jwt_public_key (--jwt-public-key) or auth.jwt_jwks (--jwt-jwks)"

// validateLimits checks the rate limits: each 0 (off) or positive.
func (c *config) validateLimits(k *checker) {
	for _, r := range []struct {
		key string
		v   float64
	}{
		{"limits.commands_per_s", c.CommandsPerSec}, {"limits.publishes_per_s", c.PublishesPerSec},
		{"limits.handshakes_per_ip_per_s", c.HandshakesPerIPPerSec},
		{"limits.commands_burst", float64(c.CommandsBurst)}, {"limits.publishes_burst", float64(c.PublishesBurst)},
		{"limits.max_rejections", float64(c.MaxRejections)}, {"limits.max_conns_per_ip", float64(c.MaxConnsPerIP)},
	} {
		k.check(r.v >= 0 && !math.IsInf(r.v, 0), r.key, "must not be negative (0: off), got %v", r.v)
	}
	k.check(c.CommandsBurst == 0 || c.CommandsPerSec > 0, "limits.commands_burst", "needs %s", c.name("limits.commands_per_s"))
	k.check(c.PublishesBurst == 0 || c.PublishesPerSec > 0, "limits.publishes_burst", "needs %s", c.name("limits.publishes_per_s"))
	k.check(c.MaxRejections == 0 || c.CommandsPerSec > 0 || c.PublishesPerSec > 0, "limits.max_rejections",
		"counts rate-limit rejections: it needs %s or %s", c.name("limits.commands_per_s"), c.name("limits.publishes_per_s"))
	k.check(c.RejectionWindow > 0 || c.MaxRejections == 0, "limits.rejection_window", "must be positive, got %v", c.RejectionWindow)
}
