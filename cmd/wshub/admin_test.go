package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestAdminFlags(t *testing.T) {
	c, err := parseWith(t, nil, nil)
	if err != nil || c.AdminMaxConns != defaultAdminMaxConns || c.AdminHeaderTimeout != defaultAdminHeaderTimeout ||
		c.AdminReadTimeout != defaultAdminReadTimeout || c.AdminWriteTimeout != defaultAdminWriteTimeout ||
		c.AdminIdleTimeout != defaultAdminIdleTimeout {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	if got, want := adminFDs(c), 2+2*defaultAdminMaxConns; got != want {
		t.Fatalf("adminFDs at the defaults: %d, want %d", got, want)
	}
	c, err = parseWith(t, []string{"--admin-read-timeout", "3s"}, map[string]string{
		"WSHUB_ADMIN_MAX_CONNS": "7", "WSHUB_ADMIN_HEADER_TIMEOUT": "1s", "WSHUB_ADMIN_READ_TIMEOUT": "9s",
		"WSHUB_ADMIN_WRITE_TIMEOUT": "4s", "WSHUB_ADMIN_IDLE_TIMEOUT": "5s",
	})
	if err != nil || c.AdminMaxConns != 7 || c.AdminHeaderTimeout != time.Second || c.AdminReadTimeout != 3*time.Second ||
		c.AdminWriteTimeout != 4*time.Second || c.AdminIdleTimeout != 5*time.Second {
		t.Fatalf("environment, and a flag over it: %+v %v", c, err)
	}
	if adminFDs(c) != 16 {
		t.Fatalf("adminFDs with 7 connections: %d, want 16", adminFDs(c))
	}
	c, err = parseWith(t, nil, map[string]string{"WSHUB_ADMIN_ADDR": ""})
	if err != nil || adminFDs(c) != 0 {
		t.Fatalf("adminFDs without an admin listener: %d %v", adminFDs(c), err)
	}

	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--admin-max-conns", "0"}, "--admin-max-conns must be at least 1, got 0"},
		{[]string{"--admin-max-conns", "-3"}, "--admin-max-conns must be at least 1"},
		{[]string{"--admin-header-timeout", "0s"}, "--admin-header-timeout must be a positive duration"},
		{[]string{"--admin-read-timeout", "-1s"}, "--admin-read-timeout must be a positive duration, got -1s"},
		{[]string{"--admin-write-timeout", "0s"}, "--admin-write-timeout must be a positive duration"},
		{[]string{"--admin-idle-timeout", "0s"}, "--admin-idle-timeout must be a positive duration"},
	} {
		if _, err := parseWith(t, tc.args, nil); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%v: %v, want an error saying %q", tc.args, err, tc.says)
		}
	}
}

// isClosed reports an EOF or a reset: the gateway closed the connection.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// metricIn reads one unlabelled sample from a /metrics body.
func metricIn(t *testing.T, body, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s: %q", name, line)
			}
			return v
		}
	}
	t.Fatalf("metric %s not in /metrics", name)
	return 0
}

// waitMetrics polls /metrics until it answers (admin connections may be
// refused while others hold the cap) and returns the body.
func (g *gateway) waitMetrics(within time.Duration) string {
	g.t.Helper()
	var body string
	eventually(g.t, within, func() bool {
		resp, err := http.Get("http://" + g.admin + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		body = string(b)
		return err == nil && resp.StatusCode == 200
	}, "an answer from /metrics")
	return body
}

// heldConn is an admin connection the gateway answered and kept open.
type heldConn struct {
	r          *bufio.Reader
	c          net.Conn
	answeredAt time.Time
}

// floodAdmin opens n connections to the admin listener, each asking for
// /healthz and keeping the connection, and waits for every one to be either
// answered (held: under the cap, then idle) or closed (refused at accept).
func floodAdmin(t *testing.T, addr string, n int) (held []heldConn, refused int) {
	t.Helper()
	var conns []net.Conn
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			if !isClosed(err) {
				t.Fatal(err)
			}
			refused++ // reset before connect returned
			continue
		}
		t.Cleanup(func() { c.Close() })
		c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: wshub\r\n\r\n")) // a refused one fails here or at the read
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			if !isClosed(err) {
				t.Fatalf("admin connection neither answered nor closed: %v", err)
			}
			refused++
			continue
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || string(b) != "ok\n" {
			t.Fatalf("/healthz on a held connection: %d %q %v", resp.StatusCode, b, err)
		}
		held = append(held, heldConn{r, c, time.Now()})
	}
	return held, refused
}

func (g *gateway) alive() {
	g.t.Helper()
	select {
	case <-g.done:
		g.t.Fatalf("wshub exited: %v", g.err)
	default:
	}
}

// The admin listener holds at most --admin-max-conns: idle keep-alive
// connections by the hundred fill that share and no more, the ones over it
// are closed at once, WebSocket traffic goes on, and the idle timeout frees
// the slots.
func TestAdminIdleConnectionsCappedAndTimedOut(t *testing.T) {
	const maxConns, flood, idle = 50, 200, 2 * time.Second
	g := startGatewayFDLimit(t, 1024, "--admin-max-conns", strconv.Itoa(maxConns), "--admin-idle-timeout", idle.String())
	canary := dial(t, g.addr)
	canary.subscribe("room:canary")
	pub := dial(t, g.addr)
	http.DefaultClient.CloseIdleConnections() // the harness's keep-alive connection would take a slot

	held, refused := floodAdmin(t, g.admin, flood)
	t.Logf("%d connections: %d answered and held, %d closed at accept", flood, len(held), refused)
	if len(held) > maxConns || len(held) == 0 || refused < flood-maxConns {
		t.Fatalf("%d held and %d refused of %d, want at most %d held", len(held), refused, flood, maxConns)
	}
	g.alive()

	pub.mustOK(map[string]any{"op": "publish", "channel": "room:canary", "data": "through the flood"})
	if m := canary.msg(); m["op"] != "message" || m["data"] != "through the flood" {
		t.Fatalf("canary got %v", m)
	}

	// The idle timeout closes the held connections.
	for i, h := range held {
		h.c.SetReadDeadline(time.Now().Add(idle + 10*time.Second))
		_, err := h.r.ReadByte()
		if !errors.Is(err, io.EOF) {
			t.Fatalf("held connection %d after the idle timeout: %v, want EOF", i, err)
		}
		if d := time.Since(h.answeredAt); d < idle/2 {
			t.Fatalf("held connection %d closed %v after its answer, before the %v idle timeout", i, d, idle)
		}
	}
	body := g.waitMetrics(10 * time.Second)
	if n := metricIn(t, body, "wshub_admin_refused_connections_total"); n < flood-maxConns {
		t.Fatalf("wshub_admin_refused_connections_total %v, want at least %d", n, flood-maxConns)
	}
	if n := metricIn(t, body, "wshub_admin_connections"); n < 1 || n > maxConns {
		t.Fatalf("wshub_admin_connections %v while answering /metrics", n)
	}
	if code, body := g.post("/api/publish", `{"channel":"room:canary","data":"after the flood"}`); code != 200 {
		t.Fatalf("POST /api/publish after the flood: %d %s", code, body)
	}
	if m := canary.msg(); m["op"] != "message" || m["data"] != "after the flood" {
		t.Fatalf("canary got %v", m)
	}
	g.alive()
}

// The scenario of the issue: under ulimit -n 1024, 1,007 idle admin
// connections and then one WebSocket connect made accept fail with EMFILE
// and the gateway exit. At the default cap the admin listener holds 128
// (idle keep-alive connections, here) and closes the others.
func TestAdminFloodUnderFDLimitLeavesWebSocketsServed(t *testing.T) {
	const flood = 1100
	g := startGatewayFDLimit(t, 1024)
	canary := dial(t, g.addr)
	canary.subscribe("room:canary")
	http.DefaultClient.CloseIdleConnections()

	held, refused := floodAdmin(t, g.admin, flood)
	t.Logf("%d connections: %d answered and held, %d closed at accept", flood, len(held), refused)
	if len(held) > defaultAdminMaxConns {
		t.Fatalf("%d admin connections held, over the default cap of %d", len(held), defaultAdminMaxConns)
	}
	pub := dial(t, g.addr) // the connect that used to end the process
	pub.mustOK(map[string]any{"op": "publish", "channel": "room:canary", "data": "still here"})
	if m := canary.msg(); m["op"] != "message" || m["data"] != "still here" {
		t.Fatalf("canary got %v", m)
	}
	g.alive()
	for _, h := range held {
		h.c.Close()
	}
	body := g.waitMetrics(10 * time.Second)
	if n := metricIn(t, body, "wshub_admin_refused_connections_total"); n < float64(refused) {
		t.Fatalf("wshub_admin_refused_connections_total %v, but %d connections were seen closed at accept", n, refused)
	}
	g.alive()
}

// A request whose body (or headers) trickle in is cut off at the read (or
// header) timeout, long before it would be complete.
func TestAdminSlowRequestsCutOff(t *testing.T) {
	const readTimeout, headerTimeout = time.Second, 500 * time.Millisecond
	g := startGateway(t, "--admin-read-timeout", readTimeout.String(), "--admin-header-timeout", headerTimeout.String())

	trickle := func(c net.Conn, n int) (stop func()) {
		done := make(chan struct{})
		go func() {
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for range n {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}()
		return func() { close(done) }
	}

	t.Run("body", func(t *testing.T) {
		const bodyLen = 100 // 20 s at 1 byte per 200 ms
		c := dialTCP(t, g.admin)
		fmt.Fprintf(c, "POST /api/publish HTTP/1.1\r\nHost: wshub\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", bodyLen)
		start := time.Now()
		defer trickle(c, bodyLen)()
		c.SetReadDeadline(start.Add(5 * time.Second))
		r := bufio.NewReader(c)
		resp, err := http.ReadResponse(r, nil)
		took := time.Since(start)
		switch {
		case err == nil:
			b, _ := io.ReadAll(resp.Body)
			t.Logf("answered %d %s after %v", resp.StatusCode, strings.TrimSpace(string(b)), took)
			if resp.StatusCode < 400 {
				t.Fatalf("trickled body answered %d", resp.StatusCode)
			}
			if _, err := r.ReadByte(); !isClosed(err) {
				t.Fatalf("connection after the answer to a trickled body: %v, want it closed", err)
			}
		case isClosed(err):
			t.Logf("closed after %v", took)
		default:
			t.Fatalf("trickled body not cut off within 5s (it takes 20s): %v", err)
		}
		if took < readTimeout/2 {
			t.Fatalf("cut off after %v, before the %v read timeout", took, readTimeout)
		}
	})
	t.Run("headers", func(t *testing.T) {
		c := dialTCP(t, g.admin)
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: wshub\r\nX-Slow: ")
		start := time.Now()
		defer trickle(c, 100)()
		c.SetReadDeadline(start.Add(5 * time.Second))
		r := bufio.NewReader(c)
		resp, err := http.ReadResponse(r, nil)
		if err == nil {
			resp.Body.Close()
			t.Logf("answered %d after %v", resp.StatusCode, time.Since(start))
			if resp.StatusCode < 400 {
				t.Fatalf("trickled headers answered %d", resp.StatusCode)
			}
		} else if !isClosed(err) {
			t.Fatalf("trickled headers not cut off within 5s: %v", err)
		}
	})
	if code, _ := g.get("/healthz"); code != 200 {
		t.Fatalf("/healthz after the slow clients: %d", code)
	}
}

// A Content-Length over the body limit is answered 413 at once, without
// waiting for the body (the read timeout is 10 s away); oversized headers
// get 431.
func TestAdminOversizedRequests(t *testing.T) {
	g := startGateway(t, "--max-publish", "16")
	c := dialTCP(t, g.admin)
	io.WriteString(c, "POST /api/publish HTTP/1.1\r\nHost: wshub\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("Content-Length 10000000 with no body sent: %v, want 413 at once", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 413 || !strings.Contains(string(b), "publish limit") {
		t.Fatalf("Content-Length over the limit: %d %s", resp.StatusCode, b)
	}

	req, _ := http.NewRequest("GET", "http://"+g.admin+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("h", 2*adminMaxHeaderBytes))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("%d bytes of headers: %d, want 431", 2*adminMaxHeaderBytes, resp.StatusCode)
	}
}

// The profiler's streaming endpoints run their full ?seconds although that
// is longer than the write timeout.
func TestAdminPprofOutlivesWriteTimeout(t *testing.T) {
	g := startGateway(t, "--pprof", "--admin-write-timeout", "1s", "--admin-read-timeout", "1s")
	for _, tc := range []struct{ path, magic string }{
		{"/debug/pprof/profile?seconds=2", "\x1f\x8b"}, // gzipped protobuf
		{"/debug/pprof/trace?seconds=2", "go 1."},
	} {
		start := time.Now()
		resp, err := http.Get("http://" + g.admin + tc.path)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(string(b), tc.magic) {
			t.Fatalf("%s with a 1s write timeout: %d, %d bytes %q..., %v", tc.path, resp.StatusCode, len(b), b[:min(len(b), 40)], err)
		}
		if took < 2*time.Second {
			t.Fatalf("%s answered after %v: cut short", tc.path, took)
		}
		t.Logf("%s: %d bytes in %v", tc.path, len(b), took)
	}
}
