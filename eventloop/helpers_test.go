package eventloop

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
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

type connInfo struct{ path, query, auth string }

func newTestHandler() *testHandler { return &testHandler{byLoop: map[int][]*Conn{}} }

func (h *testHandler) OnOpen(c *Conn) {
	h.opened.Add(1)
	h.mu.Lock()
	h.byLoop[c.Loop()] = append(h.byLoop[c.Loop()], c)
	h.seen = append(h.seen, connInfo{c.Path(), c.Query(), c.Authorization()})
	h.mu.Unlock()
}

func (h *testHandler) OnText(c *Conn, msg []byte) {
	if h.onText != nil {
		h.onText(c, msg)
		return
	}
	c.SendText(msg)
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
// and checks that Run returned nil.
func startServer(t testing.TB, cfg Config, h Handler) *Server {
	t.Helper()
	s, runErr := runServer(t, cfg, h)
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
func runServer(t testing.TB, cfg Config, h Handler) (*Server, <-chan error) {
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

// client is a raw WebSocket client that can send anything.
type client struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *client {
	t.Helper()
	return dialWith(t, addr, net.Dialer{Timeout: 3 * time.Second})
}

func dialWith(t testing.TB, addr string, d net.Dialer) *client {
	t.Helper()
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

// dialSmallBuffer connects with a tiny kernel receive buffer: a client that
// never reads backs the server's socket up quickly.
func dialSmallBuffer(t testing.TB, addr string) *client {
	return dialWith(t, addr, net.Dialer{Timeout: 3 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
		})
	}})
}

const testKey = "dGhlIHNhbXBsZSBub25jZQ=="

func upgradeRequest(path string, extra ...string) string {
	var b strings.Builder
	b.WriteString("GET " + path + " HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Key: " + testKey + "\r\nSec-WebSocket-Version: 13\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// dialWS upgrades on path and fails the test unless it gets a 101.
func dialWS(t testing.TB, s *Server, path string, extra ...string) *client {
	t.Helper()
	c := dialRaw(t, s.Addr().String())
	c.upgrade(path, extra...)
	return c
}

func (c *client) upgrade(path string, extra ...string) {
	c.t.Helper()
	c.write([]byte(upgradeRequest(path, extra...)))
	if resp := c.readResponse(); resp.StatusCode != http.StatusSwitchingProtocols {
		c.t.Fatalf("upgrade %s: status %d", path, resp.StatusCode)
	}
}

func (c *client) write(b []byte) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) readResponse() *http.Response {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("reading the HTTP response: %v", err)
	}
	return resp
}

func (c *client) readFrame(timeout time.Duration) (ws.Frame, error) {
	c.c.SetReadDeadline(time.Now().Add(timeout))
	f, err := ws.ReadFrame(c.br)
	if err == nil && f.Header.Masked {
		err = errors.New("server sent a masked frame")
	}
	return f, err
}

// next reads the next data frame, skipping pings.
func (c *client) next() ws.Frame {
	c.t.Helper()
	for {
		f, err := c.readFrame(3 * time.Second)
		if err != nil {
			c.t.Fatalf("reading a frame: %v", err)
		}
		if f.Header.OpCode != ws.OpPing {
			return f
		}
	}
}

// expectClose reads up to a close frame and checks its code. With answer,
// the client replies with the same close, as a well-behaved client does.
func (c *client) expectClose(code uint16, answer bool) {
	c.t.Helper()
	for {
		f, err := c.readFrame(3 * time.Second)
		if err != nil {
			c.t.Fatalf("waiting for close %d: %v", code, err)
		}
		if f.Header.OpCode != ws.OpClose {
			continue
		}
		if len(f.Payload) < 2 {
			c.t.Fatalf("close without a code, want %d", code)
		}
		if got := binary.BigEndian.Uint16(f.Payload); got != code {
			c.t.Fatalf("close code %d (%q), want %d", got, f.Payload[2:], code)
		}
		if answer {
			c.c.SetWriteDeadline(time.Now().Add(time.Second))
			c.c.Write(frame(ws.OpClose, true, true, f.Payload))
		}
		return
	}
}

// expectEOF checks that the server closes the connection within d, reading
// (and discarding) whatever comes before.
func (c *client) expectEOF(d time.Duration) {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("server did not close the connection within %v", d)
	}
}

// frame encodes a client frame; masked=false and odd opcodes make bad ones.
func frame(op ws.OpCode, fin, masked bool, payload []byte) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	m := byte(0)
	if masked {
		m = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, m|byte(n))
	case n <= 0xffff:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !masked {
		return append(b, payload...)
	}
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, payload...)
	ws.Cipher(b[start:], key, 0)
	return b
}

func closeBody(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
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
