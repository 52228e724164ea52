package redis

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Descriptor shares (see Config.Descriptors): a standalone Redis takes the
// pipelined connection, the dedicated subscription connection and the
// registry's, each of which may be open twice while it is replaced after a
// failure, plus dials in flight; a cluster takes that per master.
const (
	standaloneFDs = 16
	fdsPerMaster  = 8
	// budgetMasters is how many masters a cluster's share covers at least
	// (the seed list may name fewer nodes than the cluster has).
	budgetMasters = 16
)

// Descriptors is how many sockets a Broker configured with c holds open at
// most: the gateway's descriptor budget reserves that many, so that Redis
// reconnects can never take the last descriptor the event loops' accept
// needs.
func (c Config) Descriptors() int {
	if len(c.ClusterAddrs) > 0 {
		return standaloneFDs + fdsPerMaster*max(len(c.ClusterAddrs), budgetMasters)
	}
	return standaloneFDs
}

// Config selects the Redis deployment and tunes the broker. Exactly one of URL
// and ClusterAddrs must be set. Zero durations and sizes take the defaults
// documented on each field.
type Config struct {
	// URL of a standalone Redis, e.g. "redis://127.0.0.1:6379/0".
	URL string
	// ClusterAddrs are seed nodes ("host:port") of a Redis Cluster; the broker
	// then uses sharded pub/sub with one subscription connection per master.
	ClusterAddrs []string
	// InstanceID names this gateway process in Redis; it must be unique among
	// live instances. Default: DefaultInstanceID().
	InstanceID string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics registers the broker's metrics when not nil.
	Metrics prometheus.Registerer

	// CommandTimeout bounds every Redis command (publish, subscribe, registry
	// batches, probes' publish). Default 2s.
	CommandTimeout time.Duration
	// DialTimeout bounds connecting plus the HELLO handshake. Default 1s.
	DialTimeout time.Duration
	// ProbeInterval is how often each subscription connection sends itself a
	// probe message. Default 1s.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe may take to come back before the
	// connection is declared dead and reconnected. Default 2s.
	ProbeTimeout time.Duration
	// MinBackoff and MaxBackoff bound the jittered exponential backoff between
	// reconnect attempts. Defaults 50ms and 1s (so a recovered Redis is back in
	// use within about a second).
	MinBackoff, MaxBackoff time.Duration
	// SubscribeBatch is the maximum number of channels per SUBSCRIBE or
	// UNSUBSCRIBE command. Default 512.
	SubscribeBatch int
	// PublishWorkers is the number of goroutines issuing PUBLISH; a channel
	// always maps to the same worker, which keeps this instance's publications
	// on one channel in order. Default 4.
	PublishWorkers int
	// PublishQueue is each worker's queue length; a publication that finds
	// the queue full fails with hub.ErrUnavailable. Default 4096.
	PublishQueue int
	// PublishBatch is the maximum number of PUBLISH commands a worker
	// pipelines in one round trip. Default 256.
	PublishBatch int
	// ReadWorkers is the number of goroutines issuing history reads, on
	// queues of their own of PublishQueue each, pipelined like publications.
	// Default 2.
	ReadWorkers int
	// ClusterRefresh is how often the cluster slot map is re-read even without
	// a reason to. Default 5s.
	ClusterRefresh time.Duration
}

// Defaults of the settings the gateway's flags expose.
const (
	DefaultProbeInterval     = time.Second
	DefaultProbeTimeout      = 2 * time.Second
	DefaultHeartbeatInterval = 2 * time.Second
	DefaultRegistryTTL       = 10 * time.Minute
)

// ValidateInstanceID is the rule for an instance id: 1 to 128 bytes of
// A-Z a-z 0-9 _ - . : @ =, what a URL path segment, a Redis key and a
// connection id carry as they are.
func ValidateInstanceID(id string) error {
	if len(id) == 0 || len(id) > 128 {
		return fmt.Errorf("instance id %q: want 1 to 128 bytes, got %d", id, len(id))
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("_-.:@=", b) >= 0) {
			return fmt.Errorf("instance id %q: byte %q not allowed (want A-Z a-z 0-9 _ - . : @ =)", id, b)
		}
	}
	return nil
}

// DefaultInstanceID returns host, pid and a random suffix, e.g. "web1-4242-9f3a1c".
func DefaultInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "wshub"
	}
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(rand.Uint64()&0xffffff, 16)
}

func (c *Config) setDefaults() error {
	if (c.URL == "") == (len(c.ClusterAddrs) == 0) {
		return errors.New("redis: set exactly one of URL and ClusterAddrs")
	}
	if c.InstanceID == "" {
		c.InstanceID = DefaultInstanceID()
	}
	if err := ValidateInstanceID(c.InstanceID); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	durs := []struct {
		p *time.Duration
		d time.Duration
	}{
		{&c.CommandTimeout, 2 * time.Second},
		{&c.DialTimeout, time.Second},
		{&c.ProbeInterval, DefaultProbeInterval},
		{&c.ProbeTimeout, DefaultProbeTimeout},
		{&c.MinBackoff, 50 * time.Millisecond},
		{&c.MaxBackoff, time.Second},
		{&c.ClusterRefresh, 5 * time.Second},
	}
	for _, d := range durs {
		if *d.p < 0 {
			return errors.New("redis: negative duration in Config")
		}
		if *d.p == 0 {
			*d.p = d.d
		}
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	ints := []struct {
		p *int
		d int
	}{
		{&c.SubscribeBatch, 512},
		{&c.PublishWorkers, 4},
		{&c.PublishQueue, 4096},
		{&c.PublishBatch, 256},
		{&c.ReadWorkers, 2},
	}
	for _, n := range ints {
		if *n.p < 0 {
			return errors.New("redis: negative size in Config")
		}
		if *n.p == 0 {
			*n.p = n.d
		}
	}
	return nil
}

// RegistryConfig tunes the connection registry; zero values take the defaults.
type RegistryConfig struct {
	// HeartbeatInterval is how often ws:instance:<id> is rewritten. Default 2s.
	HeartbeatInterval time.Duration
	// HeartbeatTTL is the heartbeat key's TTL: once it lapses every lookup
	// treats the instance's entries as gone. Default 3 x HeartbeatInterval.
	HeartbeatTTL time.Duration
	// TTL of ws:conn:<id> and ws:user:<user>. Entries are refreshed in
	// pipelined batches spread evenly so that each is renewed every TTL/3;
	// the TTL only bounds the garbage a crashed instance leaves behind, since
	// fencing hides its entries at once. Default 10m.
	TTL time.Duration
	// RefreshTick is how often a slice of the entries is refreshed. Default 1s.
	RefreshTick time.Duration
	// MaxPipeline is the largest number of commands sent in one round trip.
	// Default 512: a burst (a connection storm, a rewrite of every entry)
	// then holds that many commands and replies at a time (some 90 KB),
	// stays under rueidis's BlockingPipeline (2000), beyond which a
	// pipeline takes a dedicated connection with 1 MiB of buffers of its
	// own, and delays what is pipelined behind it on the shared
	// connection by well under a millisecond.
	MaxPipeline int
}

func (c *RegistryConfig) setDefaults() {
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.HeartbeatTTL <= 0 {
		c.HeartbeatTTL = 3 * c.HeartbeatInterval
	}
	if c.TTL <= 0 {
		c.TTL = DefaultRegistryTTL
	}
	if c.RefreshTick <= 0 {
		c.RefreshTick = time.Second
	}
	if c.MaxPipeline <= 0 {
		c.MaxPipeline = 512
	}
}

// PresenceConfig tunes the Redis presence store; zero values take the
// defaults.
type PresenceConfig struct {
	// TTL of the presence keys. Each channel's keys are renewed once per
	// TTL/3 by every instance with members on it (one batch per RefreshTick,
	// the channels spread evenly), not per member; the TTL only bounds the
	// garbage a crashed instance leaves behind, since the registry's
	// heartbeat fences its members at once. Default 10m (DefaultRegistryTTL).
	TTL time.Duration
	// RefreshTick is how often a slice of the channels is renewed. Default 1s.
	RefreshTick time.Duration
	// MaxPipeline is the largest number of commands sent in one round trip
	// (a channel's transaction is never split). Default 512, as the
	// registry's.
	MaxPipeline int
	// MaxQueries is how many Members and Stats calls may wait on Redis at
	// once; one more is answered hub.ErrUnavailable at once. Default 256.
	MaxQueries int
}

// setDefaults: TTL, RefreshTick and MaxPipeline default as the registry's.
func (c *PresenceConfig) setDefaults() {
	r := RegistryConfig{TTL: c.TTL, RefreshTick: c.RefreshTick, MaxPipeline: c.MaxPipeline}
	r.setDefaults()
	c.TTL, c.RefreshTick, c.MaxPipeline = r.TTL, r.RefreshTick, r.MaxPipeline
	if c.MaxQueries <= 0 {
		c.MaxQueries = 256
	}
}

// backoff is a jittered exponential delay: each value is uniform in
// [cur/2, cur], cur doubling from min up to max. Owned by whoever holds it
// (a shard goroutine's local variable).
type backoff struct {
	min, max time.Duration // set once
	cur      time.Duration // last delay's upper bound; 0 before the first
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else if b.cur *= 2; b.cur > b.max {
		b.cur = b.max
	}
	half := b.cur / 2
	return half + rand.N(half+1)
}

func (b *backoff) reset() { b.cur = 0 }
