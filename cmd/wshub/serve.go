package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wshub/wshub/eventloop"
	"github.com/wshub/wshub/hub"
)

// glue adapts the event loops' callbacks to the hub; hub is set once the
// server's loops exist (the hub needs them, the server needs the handler).
type glue struct{ h *hub.Hub }

func (g *glue) OnOpen(c *eventloop.Conn)             { g.h.OnOpen(c) }
func (g *glue) OnText(c *eventloop.Conn, msg []byte) { g.h.OnText(c, msg) }
func (g *glue) OnClose(c *eventloop.Conn)            { g.h.OnClose(c) }

// serve runs the gateway until ctx is cancelled (a signal), then drains it.
// It returns the process exit code.
func serve(ctx context.Context, cfg *config, log *slog.Logger) int {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	broker, err := newBroker(cfg, log, reg)
	if err != nil {
		log.Error("broker", "err", err)
		return 1
	}
	g := &glue{}
	srv, err := eventloop.New(eventloop.Config{
		Addr: cfg.Addr, Loops: cfg.Loops,
		ReadBuffer: cfg.ReadBuffer, WriteBuffer: cfg.WriteBuffer,
		SendQueue: cfg.SendQueue, MaxPending: cfg.MaxPending, MaxMessage: cfg.MaxMessage,
		MaxConns:     cfg.MaxConns,
		PingInterval: cfg.PingInterval, PongTimeout: cfg.PongTimeout, HandshakeTimeout: cfg.HandshakeTime,
		Origins: cfg.origins(), Echo: cfg.Echo,
		Logger: log, Metrics: reg,
	}, g)
	if err != nil {
		log.Error("event loops", "err", err)
		return 1
	}
	loops := srv.Loops()
	posters := make([]hub.Poster, len(loops))
	for i, l := range loops {
		posters[i] = l
	}
	g.h = hub.New(hub.Config{MaxPublish: cfg.MaxPublish, Metrics: reg, Logger: log}, broker, posters)
	if err := broker.Start(g.h); err != nil {
		log.Error("broker start", "err", err)
		return 1
	}

	var draining atomic.Bool
	ready := func() bool { return !draining.Load() && broker.Ready() }
	admin, adminErr := startAdmin(cfg.AdminAddr, hub.AdminHandler(g.h, ready, reg), log)
	if adminErr != nil {
		log.Error("admin listener", "addr", cfg.AdminAddr, "err", adminErr)
		return 1
	}

	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run() }()
	log.Info("wshub listening", "addr", cfg.Addr, "admin", cfg.AdminAddr, "loops", len(loops), "echo", cfg.Echo)

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
		if err := <-runErr; err != nil {
			log.Error("event loops", "err", err)
			code = 1
		}
	}
	if admin != nil {
		actx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = admin.Shutdown(actx)
		cancel()
	}
	if err := broker.Close(); err != nil {
		log.Warn("broker close", "err", err)
	}
	log.Info("wshub stopped", "exit", code)
	return code
}

// startAdmin serves the admin API on its own listener; an empty addr disables it.
func startAdmin(addr string, h http.Handler, log *slog.Logger) (*http.Server, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener", "err", err)
		}
	}()
	return s, nil
}
