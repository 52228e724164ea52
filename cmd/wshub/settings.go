package main

import (
	"math"
	"runtime/debug"
	"time"

	"github.com/wshub/wshub/eventloop"
	"github.com/wshub/wshub/hub"
	"github.com/wshub/wshub/redis"
	"github.com/wshub/wshub/wsproto"
)

// setting is one thing the gateway can be told: its key in the YAML file
// ("admin.addr": sections are one level deep), its flag (none for settings only a file can
// hold; the variable is WSHUB_ and the flag's name) and its storage in a
// config, which holds its default once the table is built. This table is
// the only list of settings: flags, variables, the file, `config print`
// and the README's test all read it.
type setting struct {
	key   string
	flag  string
	v     encoder // a value, or for a file-only structure a block
	usage string
}

// settings binds every setting to c's fields and sets each to its default.
func (c *config) settings() []setting {
	return []setting{
		{"addr", "addr", stringVar(&c.Addr, ":8080"), "WebSocket listen address (clients connect to ws://ADDR/ws)"},
		{"loops", "loops", intVar(&c.Loops, 0), "event loops (epoll goroutines); one per core is right for most loads (0: one per core)"},
		{"read_buffer", "read-buffer", intVar(&c.ReadBuffer, eventloop.DefaultReadBuffer), "bytes of the read buffer each loop shares between its connections"},
		{"write_buffer", "write-buffer", intVar(&c.WriteBuffer, eventloop.DefaultWriteBuffer), "static size of each connection's outbound buffer in gnet before it spills to a list"},
		{"send_queue", "send-queue", intVar(&c.SendQueue, eventloop.DefaultSendQueue), "frames a connection may have queued; overflowing it drops the client as a slow consumer (close 1008)"},
		{"max_pending", "max-pending", intVar(&c.MaxPending, eventloop.DefaultMaxPending), "bytes a connection may have waiting in its socket's outbound buffer before it is dropped as a slow consumer"},
		{"max_message", "max-message", intVar(&c.MaxMessage, eventloop.DefaultMaxMessage), "largest client message in bytes after reassembly; larger ones close the connection with 1009"},
		{"max_publish", "max-publish", intVar(&c.MaxPublish, 0), "largest publish data in bytes; larger ones get error 413 (0: --max-message minus 1 KiB, so a publish under the limit always fits in one client message)"},
		{"max_subscriptions", "max-subscriptions", intVar(&c.MaxSubs, hub.DefaultMaxSubscriptions), "channels one connection may subscribe to; one more gets error 429 (each subscription costs the connection's loop per (un)subscribe and memory)"},
		{"max_conns", "max-conns", intVar(&c.MaxConns, 0), "connections held at most; more are refused at once (0: what the open-file limit leaves once the loops, admin listener and Redis have their descriptors; more than that is an error)"},
		{"max_partial_bytes", "max-partial-bytes", intVar(&c.MaxPartial, eventloop.DefaultMaxPartialBytes), "bytes all connections together may hold in unfinished upgrades, frames and fragmented messages; the connection that would pass it is closed with 1008"},
		{"max_fragments", "max-fragments", intVar(&c.MaxFragments, wsproto.DefaultMaxFragments), "frames one message may be split into; more close the connection with 1009"},
		{"max_pongs_per_read", "max-pongs-per-read", intVar(&c.MaxPongsPerRead, eventloop.DefaultMaxPongsPerRead), "pings of one read that each get their pong; past it the last pong answers the latest ping (bounds what a ping flood makes the gateway buffer)"},
		{"message_timeout", "message-timeout", durationVar(&c.MessageTimeout, eventloop.DefaultMessageTimeout), "how long a started message may take to arrive whole; longer closes the connection with 1008"},
		{"memory_limit", "memory-limit", memoryLimitVar(&c.MemoryLimit), "soft memory limit of the process (e.g. 2GiB; Go's GOMEMLIMIT); near it (90%) new connections get HTTP 503 until memory falls under 80% (0: none; default: GOMEMLIMIT)"},
		{"ping_interval", "ping-interval", durationVar(&c.PingInterval, eventloop.DefaultPingInterval), "how often an idle connection is pinged"},
		{"pong_timeout", "pong-timeout", durationVar(&c.PongTimeout, eventloop.DefaultPongTimeout), "how long a pinged connection may take to answer before it is closed"},
		{"handshake_timeout", "handshake-timeout", durationVar(&c.HandshakeTime, eventloop.DefaultHandshakeTimeout), "how long a new TCP connection may take to complete its upgrade before it is closed"},
		{"shutdown_timeout", "shutdown-timeout", durationVar(&c.ShutdownTimeout, 10*time.Second), "how long a graceful shutdown waits for clients to answer close 1001"},
		{"origins", "origins", listVar(&c.Origins, false), "comma-separated Origin allow-list; upgrades from other origins get 403 (empty: any origin)"},
		{"echo", "echo", boolVar(&c.Echo, false), "serve /echo, an RFC 6455 echo endpoint for conformance suites"},
		{"compression", "compression", boolVar(&c.Compression, false), "accept clients' permessage-deflate offers (RFC 7692, no context takeover): each publication is compressed once, for every compressed subscriber"},
		{"compression_min_size", "compression-min-size", intVar(&c.CompressionMinSize, eventloop.DefaultCompressionMinSize), "messages under this many bytes go out plain even to compressed clients (0: every message deflate shrinks)"},
		{"pprof", "pprof", boolVar(&c.Pprof, false), "serve Go's profiler at /debug/pprof/ on the admin listener"},
		{"instance_id", "instance-id", stringVar(&c.InstanceID, ""), "this gateway's name in Redis and in connection ids, unique among live instances: 1-128 of A-Z a-z 0-9 _ - . : @ = (default: host-pid-random)"},

		{"log.level", "log-level", stringVar(&c.LogLevel, "info"), "debug, info, warn or error"},
		{"log.format", "log-format", stringVar(&c.LogFormat, "text"), "text or json"},

		{"admin.addr", "admin-addr", stringVar(&c.AdminAddr, "127.0.0.1:9090"), "admin HTTP listen address: /api/publish, /healthz, /readyz, /metrics (empty disables); one that is not loopback needs --admin-api-key"},
		{"admin.max_conns", "admin-max-conns", intVar(&c.AdminMaxConns, defaultAdminMaxConns), "admin connections held at most; more are closed at accept (bounds the admin listener's share of file descriptors)"},
		{"admin.header_timeout", "admin-header-timeout", durationVar(&c.AdminHeaderTimeout, defaultAdminHeaderTimeout), "how long an admin client may take to send a request's headers"},
		{"admin.read_timeout", "admin-read-timeout", durationVar(&c.AdminReadTimeout, defaultAdminReadTimeout), "how long an admin client may take to send a whole request, body included"},
		{"admin.write_timeout", "admin-write-timeout", durationVar(&c.AdminWriteTimeout, defaultAdminWriteTimeout), "how long an admin answer may take to be written (/debug/pprof/profile and /trace add their ?seconds)"},
		{"admin.idle_timeout", "admin-idle-timeout", durationVar(&c.AdminIdleTimeout, defaultAdminIdleTimeout), "how long an idle keep-alive admin connection stays open"},
		{"admin.api_keys", "admin-api-key", secretListVar(&c.AdminAPIKeys), "key an admin API client must present; repeatable or comma-separated (any one is accepted, for rotation)"},
		{"admin.protect_metrics", "", boolVar(&c.AdminProtectMetrics, false), "/metrics wants an API key too"},
		{"admin.insecure", "", boolVar(&c.AdminInsecure, false), "allow a non-loopback admin.addr without API keys"},

		{"redis.url", "redis", urlVar(&c.Redis), "Redis URL (redis://[user:pass@]host:port[/db]) for scale-out; empty, and no --redis-cluster: in-process broker, one instance"},
		{"redis.cluster", "redis-cluster", listVar(&c.RedisCluster, false), "comma-separated host:port seed nodes of a Redis Cluster (sharded pub/sub); exclusive with --redis"},
		{"redis.registry", "registry", &derivedBool{&c.Registry, &c.registrySet, "on when Redis is configured"}, "keep the connection registry in Redis (addressed sends, /api/connections, /api/instances); default: on when Redis is configured"},
		{"redis.heartbeat_interval", "heartbeat-interval", durationVar(&c.HeartbeatInterval, redis.DefaultHeartbeatInterval), "how often the instance renews its registry heartbeat; its connections stop resolving 3 intervals after it dies"},
		{"redis.registry_ttl", "registry-ttl", durationVar(&c.RegistryTTL, redis.DefaultRegistryTTL), "TTL of each registry entry, renewed every third of it; bounds what a crashed instance leaves in Redis"},
		{"redis.probe_interval", "redis-probe-interval", durationVar(&c.ProbeInterval, redis.DefaultProbeInterval), "how often each Redis subscription connection sends itself a liveness probe"},
		{"redis.probe_timeout", "redis-probe-timeout", durationVar(&c.ProbeTimeout, redis.DefaultProbeTimeout), "a probe not back within this marks the subscription connection dead: /readyz 503, reconnect, resubscribe"},

		{"auth.jwt_secret", "jwt-secret", secretListVar(&c.JWTSecrets), "HMAC secret that verifies client tokens (HS256); repeatable or comma-separated (any one verifies, for rotation)"},
		{"auth.jwt_public_key", "jwt-public-key", listVar(&c.JWTPublicKeys, true), "PEM `FILE` of a public key that verifies client tokens (RS256, ES256); repeatable"},
		{"auth.jwt_jwks", "jwt-jwks", stringVar(&c.JWTJWKS, ""), "JWKS `URL-or-FILE` whose keys verify client tokens"},
		{"auth.jwt_issuer", "jwt-issuer", stringVar(&c.JWTIssuer, ""), "iss a client token must have (empty: any)"},
		{"auth.jwt_audience", "jwt-audience", stringVar(&c.JWTAudience, ""), "aud a client token must have (empty: any)"},
		{"auth.jwt_leeway", "jwt-leeway", durationVar(&c.JWTLeeway, time.Second), "clock skew allowed when checking a token's exp and nbf"},
		{"auth.allow_anonymous", "allow-anonymous", boolVar(&c.AllowAnonymous, false), "with JWT keys configured, let clients in without a token too (as anonymous)"},
		{"auth.require_exp", "", boolVar(&c.RequireExp, false), "refuse tokens without exp"},
		{"auth.max_conns_per_user", "", intVar(&c.MaxConnsPerUser, 0), "connections one user (token sub) may hold on this instance (0: no limit)"},

		{"limits.commands_per_s", "", floatVar(&c.CommandsPerSec, 0), "commands a connection may send per second (0: no limit)"},
		{"limits.commands_burst", "", intVar(&c.CommandsBurst, 0), "commands a connection may send at once over its rate (0: one second's worth)"},
		{"limits.publishes_per_s", "", floatVar(&c.PublishesPerSec, 0), "publishes a connection may send per second (0: no limit)"},
		{"limits.publishes_burst", "", intVar(&c.PublishesBurst, 0), "publishes a connection may send at once over its rate (0: one second's worth)"},
		{"limits.max_rejections", "", intVar(&c.MaxRejections, 0), "rate-limit rejections within rejection_window that close the connection with 1008 (0: never closed for it)"},
		{"limits.rejection_window", "", durationVar(&c.RejectionWindow, 10*time.Second), "window over which max_rejections are counted"},
		{"limits.max_conns_per_ip", "", intVar(&c.MaxConnsPerIP, 0), "connections one client IP may hold (0: no limit)"},
		{"limits.handshakes_per_ip_per_s", "", floatVar(&c.HandshakesPerIPPerSec, 0), "upgrades one client IP may start per second (0: no limit)"},

		{"default_namespace", "", defaultNamespaceVar(&c.DefaultNamespace), "what channels without ':' allow: {subscribe, publish} (not given: anyone may do both without auth, authenticated clients with auth)"},
		{"allow_unknown_namespaces", "", boolVar(&c.AllowUnknownNamespaces, true), "channels in a namespace not under namespaces: follow default_namespace (false: they are refused)"},
		{"namespaces", "", namespacesVar(&c.Namespaces), "what each namespace allows: NAME: {subscribe, publish, history_size, history_ttl, recovery_max, presence, join_leave, join_leave_linger, presence_for}"},
		{"history_max_bytes", "history-max-bytes", historyBytesVar(&c.HistoryMaxBytes), "memory all channels' history may take in the in-memory broker (e.g. 64MiB); past it the oldest publications go first (with Redis, Redis keeps history)"},
	}
}

// historyBytesVar defaults --history-max-bytes to the memory broker's.
func historyBytesVar(p *byteSize) *byteSize {
	*p = byteSize(hub.DefaultHistoryMaxBytes)
	return p
}

// memoryLimitVar defaults --memory-limit to what GOMEMLIMIT set (none is 0).
func memoryLimitVar(p *byteSize) *byteSize {
	*p = byteSize(debug.SetMemoryLimit(-1))
	if *p == math.MaxInt64 {
		*p = 0
	}
	return p
}
