package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/wshub/wshub/eventloop"
	"github.com/wshub/wshub/hub"
	"github.com/wshub/wshub/redis"
	"github.com/wshub/wshub/wsproto"
)

// config is everything the command line and the environment can set.
type config struct {
	Addr            string
	AdminAddr       string
	Loops           int
	ReadBuffer      int
	WriteBuffer     int
	SendQueue       int
	MaxPending      int
	MaxMessage      int
	MaxPublish      int
	MaxSubs         int
	MaxConns        int
	MaxPartial      int
	MaxFragments    int
	MessageTimeout  time.Duration
	MemoryLimit     byteSize
	PingInterval    time.Duration
	PongTimeout     time.Duration
	HandshakeTime   time.Duration
	ShutdownTimeout time.Duration
	Origins         string
	Echo            bool
	Pprof           bool
	LogLevel        string
	LogFormat       string

	Redis             string
	RedisCluster      string
	InstanceID        string
	Registry          bool
	HeartbeatInterval time.Duration
	RegistryTTL       time.Duration
	ProbeInterval     time.Duration
	ProbeTimeout      time.Duration

	// The admin listener's limits (admin.go).
	AdminMaxConns      int
	AdminHeaderTimeout time.Duration
	AdminReadTimeout   time.Duration
	AdminWriteTimeout  time.Duration
	AdminIdleTimeout   time.Duration

	registrySet bool // --registry was given (flag or environment)
}

// publishEnvelope is what the default --max-publish leaves of --max-message
// for the rest of a publish command.
const publishEnvelope = 1 << 10

// envPrefix makes every flag settable as WSHUB_<NAME> (dashes become underscores).
const envPrefix = "WSHUB_"

func newFlagSet(c *config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("wshub", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.Addr, "addr", ":8080", "WebSocket listen address (clients connect to ws://ADDR/ws)")
	fs.StringVar(&c.AdminAddr, "admin-addr", "127.0.0.1:9090", "admin HTTP listen address: /api/publish, /healthz, /readyz, /metrics (empty disables)")
	fs.IntVar(&c.AdminMaxConns, "admin-max-conns", defaultAdminMaxConns, "admin connections held at most; more are closed at accept (bounds the admin listener's share of file descriptors)")
	fs.DurationVar(&c.AdminHeaderTimeout, "admin-header-timeout", defaultAdminHeaderTimeout, "how long an admin client may take to send a request's headers")
	fs.DurationVar(&c.AdminReadTimeout, "admin-read-timeout", defaultAdminReadTimeout, "how long an admin client may take to send a whole request, body included")
	fs.DurationVar(&c.AdminWriteTimeout, "admin-write-timeout", defaultAdminWriteTimeout, "how long an admin answer may take to be written (/debug/pprof/profile and /trace add their ?seconds)")
	fs.DurationVar(&c.AdminIdleTimeout, "admin-idle-timeout", defaultAdminIdleTimeout, "how long an idle keep-alive admin connection stays open")
	fs.IntVar(&c.Loops, "loops", 0, "event loops (epoll goroutines); one per core is right for most loads (0: one per core)")
	fs.IntVar(&c.ReadBuffer, "read-buffer", eventloop.DefaultReadBuffer, "bytes of the read buffer each loop shares between its connections")
	fs.IntVar(&c.WriteBuffer, "write-buffer", eventloop.DefaultWriteBuffer, "static size of each connection's outbound buffer in gnet before it spills to a list")
	fs.IntVar(&c.SendQueue, "send-queue", eventloop.DefaultSendQueue, "frames a connection may have queued; overflowing it drops the client as a slow consumer (close 1008)")
	fs.IntVar(&c.MaxPending, "max-pending", eventloop.DefaultMaxPending, "bytes a connection may have waiting in its socket's outbound buffer before it is dropped as a slow consumer")
	fs.IntVar(&c.MaxMessage, "max-message", eventloop.DefaultMaxMessage, "largest client message in bytes after reassembly; larger ones close the connection with 1009")
	fs.IntVar(&c.MaxPublish, "max-publish", 0, "largest publish data in bytes; larger ones get error 413 (0: --max-message minus 1 KiB, so a publish under the limit always fits in one client message)")
	fs.IntVar(&c.MaxSubs, "max-subscriptions", hub.DefaultMaxSubscriptions, "channels one connection may subscribe to; one more gets error 429 (each subscription costs the connection's loop per (un)subscribe and memory)")
	fs.IntVar(&c.MaxConns, "max-conns", 0, "connections held at most; more are refused at once (0: what the open-file limit leaves once the loops, admin listener and Redis have their descriptors; more than that is an error)")
	fs.IntVar(&c.MaxPartial, "max-partial-bytes", eventloop.DefaultMaxPartialBytes, "bytes all connections together may hold in unfinished upgrades, frames and fragmented messages; the connection that would pass it is closed with 1008")
	fs.IntVar(&c.MaxFragments, "max-fragments", wsproto.DefaultMaxFragments, "frames one message may be split into; more close the connection with 1009")
	fs.DurationVar(&c.MessageTimeout, "message-timeout", eventloop.DefaultMessageTimeout, "how long a started message may take to arrive whole; longer closes the connection with 1008")
	c.MemoryLimit = byteSize(debug.SetMemoryLimit(-1))
	if c.MemoryLimit == math.MaxInt64 {
		c.MemoryLimit = 0
	}
	fs.Var(&c.MemoryLimit, "memory-limit", "soft memory limit of the process (e.g. 2GiB; Go's GOMEMLIMIT); near it (90%) new connections get HTTP 503 until memory falls under 80% (0: none; default: GOMEMLIMIT)")
	fs.DurationVar(&c.PingInterval, "ping-interval", eventloop.DefaultPingInterval, "how often an idle connection is pinged")
	fs.DurationVar(&c.PongTimeout, "pong-timeout", eventloop.DefaultPongTimeout, "how long a pinged connection may take to answer before it is closed")
	fs.DurationVar(&c.HandshakeTime, "handshake-timeout", eventloop.DefaultHandshakeTimeout, "how long a new TCP connection may take to complete its upgrade before it is closed")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a graceful shutdown waits for clients to answer close 1001")
	fs.StringVar(&c.Origins, "origins", "", "comma-separated Origin allow-list; upgrades from other origins get 403 (empty: any origin)")
	fs.BoolVar(&c.Echo, "echo", false, "serve /echo, an RFC 6455 echo endpoint for conformance suites")
	fs.BoolVar(&c.Pprof, "pprof", false, "serve Go's profiler at /debug/pprof/ on the admin listener")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.StringVar(&c.Redis, "redis", "", "Redis URL (redis://[user:pass@]host:port[/db]) for scale-out; empty, and no --redis-cluster: in-process broker, one instance")
	fs.StringVar(&c.RedisCluster, "redis-cluster", "", "comma-separated host:port seed nodes of a Redis Cluster (sharded pub/sub); exclusive with --redis")
	fs.StringVar(&c.InstanceID, "instance-id", "", "this gateway's name in Redis and in connection ids, unique among live instances: 1-128 of A-Z a-z 0-9 _ - . : @ = (default: host-pid-random)")
	fs.BoolVar(&c.Registry, "registry", false, "keep the connection registry in Redis (addressed sends, /api/connections, /api/instances); default: on when Redis is configured")
	fs.DurationVar(&c.HeartbeatInterval, "heartbeat-interval", redis.DefaultHeartbeatInterval, "how often the instance renews its registry heartbeat; its connections stop resolving 3 intervals after it dies")
	fs.DurationVar(&c.RegistryTTL, "registry-ttl", redis.DefaultRegistryTTL, "TTL of each registry entry, renewed every third of it; bounds what a crashed instance leaves in Redis")
	fs.DurationVar(&c.ProbeInterval, "redis-probe-interval", redis.DefaultProbeInterval, "how often each Redis subscription connection sends itself a liveness probe")
	fs.DurationVar(&c.ProbeTimeout, "redis-probe-timeout", redis.DefaultProbeTimeout, "a probe not back within this marks the subscription connection dead: /readyz 503, reconnect, resubscribe")
	fs.Usage = func() {
		fmt.Fprintf(out, "wshub: a horizontally-scalable WebSocket pub/sub gateway.\n\nUsage: wshub [flags]\n\nEvery flag can also be set as %s<NAME> (e.g. %sPING_INTERVAL=30s); a flag on the command line wins.\n\n", envPrefix, envPrefix)
		fs.PrintDefaults()
	}
	return fs
}

// parseConfig reads flags, then fills every flag not given on the command
// line from its WSHUB_ variable (a variable set to "" counts: it is how
// WSHUB_ADMIN_ADDR= disables the admin listener), then validates the whole.
func parseConfig(args []string, lookupEnv func(string) (string, bool), out io.Writer) (*config, error) {
	c := &config{}
	fs := newFlagSet(c, out)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (all settings are flags)", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, set := lookupEnv(name); set {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", name, v, err))
			}
			given[f.Name] = true
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.registrySet = given["registry"]
	if !c.registrySet {
		c.Registry = c.redisEnabled()
	}
	if c.InstanceID == "" {
		c.InstanceID = redis.DefaultInstanceID()
	}
	if c.MaxPublish == 0 {
		// The command around data (op, channel, id) takes at most ~300 bytes.
		c.MaxPublish = max(c.MaxMessage-publishEnvelope, 1)
	}
	return c, c.validate()
}

// redisEnabled reports whether a Redis broker is configured.
func (c *config) redisEnabled() bool { return c.Redis != "" || c.RedisCluster != "" }

func (c *config) validate() error {
	var errs []error
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	check(c.Addr != "", "--addr must not be empty")
	check(c.Loops >= 0 && c.Loops <= 256, "--loops must be between 0 (one per core) and 256, got %d", c.Loops)
	check(c.ReadBuffer >= 4<<10, "--read-buffer must be at least 4096 bytes, got %d", c.ReadBuffer)
	check(c.WriteBuffer >= 1<<10, "--write-buffer must be at least 1024 bytes, got %d", c.WriteBuffer)
	check(c.SendQueue >= 1 && c.SendQueue <= eventloop.MaxSendQueue, "--send-queue must be between 1 and %d frames, got %d", eventloop.MaxSendQueue, c.SendQueue)
	check(c.MaxPending >= 4<<10, "--max-pending must be at least 4096 bytes, got %d", c.MaxPending)
	check(c.MaxMessage >= 125 && c.MaxMessage <= 64<<20, "--max-message must be between 125 bytes and 64 MiB, got %d", c.MaxMessage)
	check(c.MaxPublish >= 0, "--max-publish must not be negative, got %d", c.MaxPublish)
	check(c.MaxSubs >= 1 && c.MaxSubs <= 1<<20, "--max-subscriptions must be between 1 and 1048576, got %d", c.MaxSubs)
	check(c.MaxConns >= 0, "--max-conns must not be negative, got %d", c.MaxConns)
	check(c.MaxPartial >= eventloop.MinPartialBytes(c.MaxMessage), "--max-partial-bytes must hold one largest message (at least %d for --max-message %d), got %d",
		eventloop.MinPartialBytes(c.MaxMessage), c.MaxMessage, c.MaxPartial)
	check(c.MaxFragments >= 1 && c.MaxFragments <= wsproto.MaxFragmentsCeiling, "--max-fragments must be between 1 and %d, got %d", wsproto.MaxFragmentsCeiling, c.MaxFragments)
	check(c.MessageTimeout > 0, "--message-timeout must be positive")
	check(c.PingInterval > 0, "--ping-interval must be positive")
	check(c.PongTimeout > 0, "--pong-timeout must be positive")
	check(c.HandshakeTime > 0, "--handshake-timeout must be positive")
	check(c.ShutdownTimeout > 0, "--shutdown-timeout must be positive")
	check(c.LogFormat == "text" || c.LogFormat == "json", "--log-format must be text or json, got %q", c.LogFormat)
	_, lerr := parseLevel(c.LogLevel)
	check(lerr == nil, "--log-level: %v", lerr)
	errs = append(errs, c.validateAdmin()...)
	errs = append(errs, c.validateRedis()...)
	return errors.Join(errs...)
}

// validateRedis checks the scale-out settings.
func (c *config) validateRedis() []error {
	var errs []error
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	check(c.Redis == "" || c.RedisCluster == "", "--redis and --redis-cluster are exclusive: give one (standalone URL or cluster seed nodes)")
	if c.Redis != "" {
		err := redis.ValidateURL(c.Redis)
		check(err == nil, "--redis %q: %v (want redis://host:port)", c.Redis, err)
	}
	if c.RedisCluster != "" {
		for _, a := range strings.Split(c.RedisCluster, ",") {
			_, port, err := net.SplitHostPort(strings.TrimSpace(a))
			if err == nil {
				_, err = strconv.ParseUint(port, 10, 16)
			}
			check(err == nil, "--redis-cluster: %q is not host:port", a)
		}
	}
	if err := redis.ValidateInstanceID(c.InstanceID); err != nil {
		errs = append(errs, fmt.Errorf("--instance-id: %v", err))
	}
	check(!c.Registry || c.redisEnabled(), "--registry needs --redis or --redis-cluster (the registry lives in Redis)")
	check(c.HeartbeatInterval >= 100*time.Millisecond, "--heartbeat-interval must be at least 100ms, got %v", c.HeartbeatInterval)
	check(c.RegistryTTL >= 3*time.Second && c.RegistryTTL >= 3*c.HeartbeatInterval,
		"--registry-ttl must be at least 3s and 3 heartbeat intervals, got %v", c.RegistryTTL)
	check(c.ProbeInterval >= 10*time.Millisecond, "--redis-probe-interval must be at least 10ms, got %v", c.ProbeInterval)
	check(c.ProbeTimeout >= 10*time.Millisecond, "--redis-probe-timeout must be at least 10ms, got %v", c.ProbeTimeout)
	return errs
}

// clusterAddrs splits --redis-cluster.
func (c *config) clusterAddrs() []string {
	var out []string
	for _, a := range strings.Split(c.RedisCluster, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// origins splits the allow-list.
func (c *config) origins() []string {
	var out []string
	for _, o := range strings.Split(c.Origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

func exitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(os.Stderr, "wshub:", err)
	return 2
}
