package eventloop

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/wshub/wshub/wsproto"
	"github.com/wshub/wshub/wsproto/wstest"
)

// testHandler echoes text messages (unless onText is set) and keeps the open
// connections by loop, for tests that post deliveries to loops.
type testHandler struct {
	opened, closed atomic.Int64
	onText         func(c *Conn, msg []byte)

	mu     sync.Mutex
	byLoop map[int][]*Conn
	seen   []connInfo
}

type connInfo struct{ path pathKind }

func newTestHandler() *testHandler { return &testHandler{byLoop: map[int][]*Conn{}} }

func (h *testHandler) OnOpen(c *Conn) {
	h.opened.Add(1)
	h.mu.Lock()
	h.byLoop[c.Loop()] = append(h.byLoop[c.Loop()], c)
	h.seen = append(h.seen, connInfo{c.path})
	h.mu.Unlock()
}

func (h *testHandler) OnText(c *Conn, msg []byte) {
	if h.onText != nil {
		h.onText(c, msg)
		return
	}
	sendText(c, msg)
}

func (h *testHandler) OnClose(c *Conn) {
	h.closed.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	list := h.byLoop[c.Loop()]
	for i, x := range list {
		if x == c {
			h.byLoop[c.Loop()] = append(list[:i], list[i+1:]...)
			break
		}
	}
}

// sendText queues a text frame holding a copy of payload (what a Handler
// does with a shared frame, for one connection).
func sendText(c *Conn, payload []byte) bool {
	if c.state != stOpen {
		return false
	}
	f := wsproto.NewFrame(ws.OpText, payload)
	ok := c.Send(f)
	f.Release()
	return ok
}

// conns returns the open connections of a loop; call it on that loop.
func (h *testHandler) conns(loop int) []*Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*Conn(nil), h.byLoop[loop]...)
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer runs a server on a free loopback port; cleanup shuts it down
// and checks that Run returned nil. prep, if any, adjusts the Server before
// it runs.
func startServer(t testing.TB, cfg Config, h Handler, prep ...func(*Server)) *Server {
	t.Helper()
	s, runErr := runServer(t, cfg, h, prep...)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		select {
		case err := <-runErr:
			if err != nil {
				t.Errorf("Run returned %v after Shutdown", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return after Shutdown")
		}
	})
	return s
}

// runServer starts a server and hands Run's result to the test; cleanup
// only makes sure it is stopped.
func runServer(t testing.TB, cfg Config, h Handler, prep ...func(*Server)) (*Server, <-chan error) {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.Loops == 0 {
		cfg.Loops = 2
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	s, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range prep {
		p(s)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run() }()
	<-s.Ready()
	if s.Addr() == nil {
		t.Fatalf("server did not start: %v", <-runErr)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s, runErr
}

// client is the raw test client shared with the gateway's tests.
type client = wstest.Client

func dialRaw(t testing.TB, addr string) *client { return wstest.Dial(t, addr) }

// dialSmallBuffer connects with a tiny kernel receive buffer: a client that
// never reads backs the server's socket up quickly.
func dialSmallBuffer(t testing.TB, addr string) *client {
	return wstest.DialWith(t, addr, net.Dialer{Timeout: 3 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
		})
	}})
}

// dialWS upgrades on path and fails the test unless it gets a 101.
func dialWS(t testing.TB, s *Server, path string, extra ...string) *client {
	t.Helper()
	c := dialRaw(t, s.Addr().String())
	c.Upgrade(path, extra...)
	return c
}

// dialUntilBound opens connections until every loop of s is bound and
// returns them. Each loop accepts on its own SO_REUSEPORT listener and the
// kernel spreads connections by a hash, so how many it takes varies; 64
// dials all landing on one of two loops has odds of 2^-63.
func dialUntilBound(t testing.TB, s *Server) []*client {
	t.Helper()
	var cs []*client
	for range 64 {
		cs = append(cs, dialWS(t, s, "/ws"))
		bound := true
		for _, l := range s.Loops() {
			bound = bound && l.bound()
		}
		if bound {
			return cs
		}
	}
	t.Fatalf("64 connections did not bind all %d loops", len(s.Loops()))
	return nil
}

// metricValue sums the samples of a metric family whose labels include want.
func metricValue(t testing.TB, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for k, v := range want {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

// eventually polls cond for up to d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawSockets returns a function that connects a raw socket to s, closed
// when the test ends: a connection that costs the test process no Go heap,
// for tests that measure the server's.
func rawSockets(t *testing.T, s *Server) func() int {
	port := s.Addr().(*net.TCPAddr).Port
	var fds []int
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	return func() int {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		return fd
	}
}
