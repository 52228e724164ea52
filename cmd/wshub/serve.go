package main

import (
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wshub/wshub/eventloop"
	"github.com/wshub/wshub/hub"
	"github.com/wshub/wshub/redis"
	"github.com/wshub/wshub/wsproto"
)

// glue adapts the event loops' callbacks to the hub; hub is set once the
// server's loops exist (the hub needs them, the server needs the handler).
type glue struct{ h *hub.Hub }

func (g *glue) OnOpen(c *eventloop.Conn)             { g.h.OnOpen(c) }
func (g *glue) OnText(c *eventloop.Conn, msg []byte) { g.h.OnText(c, msg) }
func (g *glue) OnClose(c *eventloop.Conn)            { g.h.OnClose(c) }
func (g *glue) OnExpire(c *eventloop.Conn)           { g.h.OnExpire(c) }
func (g *glue) OnWritable(c *eventloop.Conn)         { g.h.OnWritable(c) }
func (g *glue) OnUpgrade(c *eventloop.Conn, req *wsproto.Handshake) int {
	if code := g.h.OnUpgrade(c, req.Query, req.Authorization); code != hub.UpgradeLater {
		return code
	}
	return eventloop.UpgradeLater
}

// engineStopGrace bounds the wait for the event loops after a drain.
const engineStopGrace = 5 * time.Second

// serve runs the gateway until ctx is cancelled (a signal), then drains it.
// It returns the process exit code.
func serve(ctx context.Context, cfg *config, log *slog.Logger) int {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if cfg.MemoryLimit > 0 {
		// The runtime's GC works to stay under it; the event loops refuse
		// new connections near it (eventloop/memory.go).
		debug.SetMemoryLimit(int64(cfg.MemoryLimit))
	}
	acc, err := buildAccess(cfg, log)
	if err != nil {
		log.Error("access control", "err", err)
		return 1
	}
	if acc.verifier != nil {
		defer acc.verifier.Close()
	}
	g := &glue{}
	srv, err := eventloop.New(eventloop.Config{
		Addr: cfg.Addr, Loops: cfg.Loops,
		ReadBuffer: cfg.ReadBuffer, WriteBuffer: cfg.WriteBuffer,
		SendQueue: cfg.SendQueue, MaxPending: cfg.MaxPending, MaxMessage: cfg.MaxMessage,
		MaxConns: cfg.MaxConns, ReservedFDs: cfg.reservedFDs(),
		MaxPartialBytes: cfg.MaxPartial, MaxFragments: cfg.MaxFragments, MessageTimeout: cfg.MessageTimeout,
		MemoryLimit:  int64(cfg.MemoryLimit),
		PingInterval: cfg.PingInterval, PongTimeout: cfg.PongTimeout, HandshakeTimeout: cfg.HandshakeTime,
		Origins: cfg.origins(), Echo: cfg.Echo, MaxPongsPerRead: cfg.MaxPongsPerRead,
		// 0 would be the loops' default: here it means every message.
		Compression: cfg.Compression, CompressionMinSize: max(cfg.CompressionMinSize, 1),
		MaxConnsPerIP: cfg.MaxConnsPerIP, HandshakesPerIPPerS: cfg.HandshakesPerIPPerSec,
		Logger: log, Metrics: reg,
	}, g)
	if err != nil {
		log.Error("event loops", "err", err)
		return 1
	}

	// The admin listener comes first, so that health checks answer (and
	// /readyz says 503) while the broker is still being reached.
	adminH := &adminSwitch{}
	adminH.set(requireAPIKey(cfg.AdminAPIKeys, cfg.AdminProtectMetrics, startingHandler(reg)))
	admin, adminErr := startAdmin(cfg, adminH, reg, log)
	if adminErr != nil {
		log.Error("admin listener", "addr", cfg.AdminAddr, "err", adminErr)
		return 1
	}
	defer stopAdmin(admin)
	if cfg.AdminAddr != "" && !loopback(cfg.AdminAddr) && len(cfg.AdminAPIKeys) == 0 {
		// admin.insecure let it start: say it on every start, not only once.
		log.Warn("the admin API is open to the network without a key (admin.insecure): anyone who reaches it can publish and send", "admin", cfg.AdminAddr)
	}

	broker, rb, err := openBroker(ctx, cfg, log, reg)
	if err == errStopped {
		log.Info("wshub stopped before Redis answered", "exit", 0)
		return 0
	}
	if err != nil {
		log.Error("broker", "err", err)
		return 1
	}
	hcfg := hub.Config{MaxPublish: cfg.MaxPublish, MaxSubscriptions: cfg.MaxSubs, Metrics: reg, Logger: log, InstanceID: cfg.InstanceID,
		Auth: acc.auth, Policy: acc.policy, Limits: acc.limits,
		// Half of max_pending: a presence answer alone never makes its
		// client a slow consumer.
		MaxPresenceAnswer: cfg.MaxPending / 2}
	var registry *redis.Registry
	if cfg.Registry {
		// The registry exists before the hub so that every connection is
		// recorded; it writes to Redis in batches from its own goroutine.
		r, err := redis.NewRegistry(rb, redis.RegistryConfig{HeartbeatInterval: cfg.HeartbeatInterval, TTL: cfg.RegistryTTL})
		if err != nil {
			log.Error("connection registry", "err", err)
			broker.Close()
			return 1
		}
		hcfg.Registrar, hcfg.Directory = r, r
		registry = r
	}
	if hcfg.Presence, err = presenceStore(acc.policy, registry, rb != nil, cfg.RegistryTTL); err != nil {
		log.Error("presence", "err", err)
		broker.Close()
		return 1
	}
	loops := srv.Loops()
	posters := make([]hub.Poster, len(loops))
	for i, l := range loops {
		posters[i] = l
	}
	g.h = hub.New(hcfg, broker, posters)
	if rb != nil {
		h := g.h
		rb.SetDirectHandler(func(connID string, data []byte) { h.SendDirect(connID, data) })
	}
	if err := broker.Start(g.h); err != nil {
		log.Error("broker start", "err", err)
		broker.Close()
		return 1
	}

	var draining atomic.Bool
	ready := func() bool { return !draining.Load() && broker.Ready() }
	adminH.set(requireAPIKey(cfg.AdminAPIKeys, cfg.AdminProtectMetrics, withPprof(hub.AdminHandler(g.h, ready, reg), cfg.Pprof)))

	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run() }()
	// The bound addresses (with port 0, the ports the kernel chose), once
	// the WebSocket listener is open; Addr is nil when Run failed, which
	// runErr reports below.
	<-srv.Ready()
	if addr := srv.Addr(); addr != nil {
		log.Info("wshub listening", "addr", addr.String(), "admin", adminAddr(admin), "loops", len(loops), "echo", cfg.Echo, "compression", cfg.Compression,
			"instance", cfg.InstanceID, "broker", brokerName(cfg), "registry", cfg.Registry, "auth", cfg.authEnabled())
	}

	code := 0
	select {
	case err := <-runErr:
		// The engine stopped without being asked (e.g. accept failed): every
		// client is gone, so this process must not pretend to be healthy.
		log.Error("event loops stopped unexpectedly", "err", err)
		code = 1
	case <-ctx.Done():
		log.Info("shutting down: draining clients", "timeout", cfg.ShutdownTimeout)
		draining.Store(true)
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("drain did not finish cleanly", "err", err)
		}
		cancel()
		// Shutdown stops the engine even when the drain timed out; should it
		// not return, exit anyway rather than hang a rolling deploy.
		select {
		case err := <-runErr:
			if err != nil {
				log.Error("event loops", "err", err)
				code = 1
			}
		case <-time.After(engineStopGrace):
			log.Error("event loops did not stop after the drain", "waited", engineStopGrace)
			code = 1
		}
	}
	// After the drain: closing the Redis broker deletes this instance's
	// registry entries, so lookups stop finding it at once.
	if err := broker.Close(); err != nil {
		log.Warn("broker close", "err", err)
	}
	log.Info("wshub stopped", "exit", code)
	return code
}

func brokerName(cfg *config) string {
	switch {
	case cfg.Redis != "":
		return "redis"
	case len(cfg.RedisCluster) > 0:
		return "redis-cluster"
	}
	return "memory"
}

// adminAddr is the admin listener's bound address, "" when it is disabled.
func adminAddr(s *http.Server) string {
	if s == nil {
		return ""
	}
	return s.Addr
}

func stopAdmin(s *http.Server) {
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = s.Shutdown(ctx)
	cancel()
}
