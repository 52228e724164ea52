package main

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// withPprof adds Go's profiler under /debug/pprof/ when asked: the way to see
// where CPU and allocations go in a running gateway.
func withPprof(h http.Handler, on bool) http.Handler {
	if !on {
		return h
	}
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// adminSwitch is the admin listener's handler: a start-up handler while the
// broker is not up yet (health and metrics answer, the rest says 503), then
// the hub's admin API.
type adminSwitch struct{ h atomic.Pointer[http.Handler] }

func (s *adminSwitch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

func (s *adminSwitch) set(h http.Handler) { s.h.Store(&h) }

// startingHandler serves the admin listener before the hub exists.
func startingHandler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not ready: starting (waiting for the broker)", http.StatusServiceUnavailable)
	})
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":{"code":503,"message":"starting: waiting for the broker, retry later"}}`+"\n")
	})
	return mux
}

// Admin listener defaults, used by the flags and nowhere else.
const (
	defaultAdminMaxConns      = 128
	defaultAdminHeaderTimeout = 5 * time.Second
	defaultAdminReadTimeout   = 10 * time.Second
	defaultAdminWriteTimeout  = 30 * time.Second
	defaultAdminIdleTimeout   = 60 * time.Second
	// adminMaxHeaderBytes bounds a request's headers (net/http allows 4 KiB
	// more for the request line); the admin API needs a few hundred bytes.
	adminMaxHeaderBytes = 16 << 10
)

// adminFDsPerConn is what one admin connection may hold: its socket and what
// its handler opens (the Prometheus process collector reads /proc files
// during a /metrics scrape).
const adminFDsPerConn = 2

// adminFDs is the number of file descriptors the admin listener holds at
// most: the listening socket, the one connection being refused over the cap,
// and adminFDsPerConn for each of --admin-max-conns; 0 when it is disabled.
func adminFDs(c *config) int {
	if c.AdminAddr == "" {
		return 0
	}
	return 2 + adminFDsPerConn*c.AdminMaxConns
}

// validateAdmin checks the admin listener's settings. One reachable from
// other hosts must ask its clients for a key (the admin API publishes to
// every client and profiles the process) unless admin.insecure says that
// the network in front of it does.
func (c *config) validateAdmin(k *checker) {
	k.check(c.AdminMaxConns >= 1, "admin.max_conns", "must be at least 1, got %d", c.AdminMaxConns)
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"admin.header_timeout", c.AdminHeaderTimeout}, {"admin.read_timeout", c.AdminReadTimeout},
		{"admin.write_timeout", c.AdminWriteTimeout}, {"admin.idle_timeout", c.AdminIdleTimeout},
	} {
		k.check(d.v > 0, d.key, "must be a positive duration, got %v", d.v)
	}
	k.check(c.AdminAddr == "" || loopback(c.AdminAddr) || len(c.AdminAPIKeys) > 0 || c.AdminInsecure, "admin.addr",
		"%q is reachable from other hosts and the admin API has no key: set admin.api_keys (--admin-api-key) or admin.insecure: true", c.AdminAddr)
	k.check(!c.AdminProtectMetrics || len(c.AdminAPIKeys) > 0, "admin.protect_metrics", "needs admin.api_keys (--admin-api-key)")
}

// loopback reports whether the listen address addr only takes connections
// from this host: 127.0.0.0/8, ::1 or localhost (an empty host is every
// interface).
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// startAdmin serves the admin API on its own listener; an empty
// --admin-addr disables it. The server's timeouts and the connection cap
// bound what slow or idle clients can hold: no admin client can take the
// descriptors the WebSocket listener needs, and errors on accept (EMFILE)
// are retried by http.Server, never the end of the admin listener.
//
// The profiler's streaming endpoints (/debug/pprof/profile and /trace with
// ?seconds=N) outlive the write timeout; net/http/pprof extends its own
// write deadline by N itself (TestAdminPprofOutlivesWriteTimeout).
func startAdmin(cfg *config, h http.Handler, reg prometheus.Registerer, log *slog.Logger) (*http.Server, error) {
	if cfg.AdminAddr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		return nil, err
	}
	cl := newCapListener(ln, cfg.AdminMaxConns)
	if err := cl.register(reg); err != nil {
		ln.Close()
		return nil, err
	}
	s := &http.Server{
		Addr:              ln.Addr().String(), // the bound address, for the log (Serve does not use it)
		Handler:           h,
		ReadHeaderTimeout: cfg.AdminHeaderTimeout,
		ReadTimeout:       cfg.AdminReadTimeout,
		WriteTimeout:      cfg.AdminWriteTimeout,
		IdleTimeout:       cfg.AdminIdleTimeout,
		MaxHeaderBytes:    adminMaxHeaderBytes,
		// Accept retries ("http: Accept error: ...; retrying in 5ms") and
		// the like go to our log, not to a bare line on stderr.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := s.Serve(cl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener", "err", err)
		}
	}()
	return s, nil
}
