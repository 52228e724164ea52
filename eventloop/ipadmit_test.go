package eventloop

import (
	"math"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wshub/wshub/wsproto"
	"github.com/wshub/wshub/wsproto/wstest"
)

func TestIPLimitConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Addr: ":0", MaxConnsPerIP: -1},
		{Addr: ":0", HandshakesPerIPPerS: -1},
		{Addr: ":0", HandshakesPerIPPerS: math.NaN()},
		{Addr: ":0", HandshakesPerIPPerS: math.Inf(1)},
		{Addr: ":0", HandshakesPerIPPerS: MaxHandshakesPerIPPerS * 2},
	} {
		if _, err := New(cfg, newTestHandler()); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	s, err := New(Config{Addr: ":0", Logger: quietLogger()}, newTestHandler())
	if err != nil {
		t.Fatal(err)
	}
	if s.ips != nil {
		t.Fatal("a per-IP table without per-IP limits")
	}
	s, err = New(Config{Addr: ":0", Logger: quietLogger(), MaxConns: 100, MaxConnsPerIP: 10}, newTestHandler())
	if err != nil {
		t.Fatal(err)
	}
	if s.ips == nil || s.ips.maxEntries*ipStripes < ipTableCapacity(100) {
		t.Fatalf("per-IP table %+v", s.ips)
	}
	if n := testing.AllocsPerRun(100, func() { wsproto.TooManyRequests(60) }); n != 0 {
		t.Fatalf("a 429 allocates %v times", n)
	}
	want := "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
	if got := string(wsproto.TooManyRequests(7)); got != want {
		t.Fatalf("429: %q", got)
	}
	if got := string(wsproto.TooManyRequests(0)); got != string(wsproto.TooManyRequests(1)) {
		t.Fatalf("Retry-After under 1 s: %q", got)
	}
	if got := string(wsproto.TooManyRequests(3600)); got != "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3600\r\nConnection: close\r\nContent-Length: 0\r\n\r\n" {
		t.Fatalf("429 for an hour: %q", got)
	}
}

// dialFrom connects to s from the loopback address src (Linux routes all of
// 127/8 to lo).
func dialFrom(t testing.TB, s *Server, src string) *client {
	t.Helper()
	return wstest.DialWith(t, s.Addr().String(), net.Dialer{Timeout: wstest.Timeout,
		LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}})
}

// expect429 sends an upgrade from c and checks the 429, its Retry-After and
// the close that follows.
func expect429(t testing.TB, c *client, retryAfter string) {
	t.Helper()
	c.Write([]byte(wstest.UpgradeRequest("test", "/ws")))
	resp := c.ExpectRejected(429)
	if got := resp.Header.Get("Retry-After"); got != retryAfter {
		t.Fatalf("Retry-After %q, want %q", got, retryAfter)
	}
	if resp.ContentLength != 0 || !resp.Close {
		t.Fatalf("429 with Content-Length %d, close %v", resp.ContentLength, resp.Close)
	}
}

func TestPerIPConnLimit(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startServer(t, Config{MaxConnsPerIP: 2, Metrics: reg}, newTestHandler())
	refused := func() float64 {
		return metricValue(t, reg, "wshub_eventloop_refused_connections_total", map[string]string{"reason": "ip_conns"})
	}
	held := []*client{dialWS(t, s, "/ws"), dialWS(t, s, "/ws")}
	expect429(t, dialRaw(t, s.Addr().String()), "5")
	// The refused connection has closed (EOF): had it given back a count it
	// never took, this one would be admitted.
	expect429(t, dialRaw(t, s.Addr().String()), "5")
	if v := refused(); v != 2 {
		t.Fatalf("refused{ip_conns} %v, want 2", v)
	}
	// Another source has its own quota.
	other := dialFrom(t, s, "127.0.0.2")
	other.Upgrade("/ws")
	if v := metricValue(t, reg, "wshub_eventloop_ip_table_entries", nil); v != 2 {
		t.Fatalf("ip_table_entries %v, want 2", v)
	}
	for i, c := range held { // the admitted ones are served
		c.Write(wstest.Frame(1, true, true, []byte{'a' + byte(i)}))
		if f := c.NextFrame(); string(f.Payload) != string([]byte{'a' + byte(i)}) {
			t.Fatalf("held %d: %q", i, f.Payload)
		}
	}
	// Once one closes (OnClose has run when Conns drops: the count is given
	// back before), the source is admitted again, exactly once.
	held[0].Conn.Close()
	eventually(t, 5*time.Second, "the closed connection's OnClose", func() bool { return s.Conns() == 2 })
	dialWS(t, s, "/ws")
	expect429(t, dialRaw(t, s.Addr().String()), "5")
	if v := refused(); v != 3 {
		t.Fatalf("refused{ip_conns} %v, want 3", v)
	}
}

// The handshake rate over real sockets, on a clock the test moves.
func TestPerIPHandshakeRate(t *testing.T) {
	reg := prometheus.NewRegistry()
	var clock atomic.Int64
	clock.Store(int64(time.Hour))
	s := startServer(t, Config{HandshakesPerIPPerS: 3, Metrics: reg}, newTestHandler(),
		func(s *Server) { s.ipClock = clock.Load })
	upgrade := func() {
		t.Helper()
		c := dialWS(t, s, "/ws")
		c.Conn.Close() // the rate counts upgrades, not connections
	}
	for range 3 {
		upgrade()
	}
	expect429(t, dialRaw(t, s.Addr().String()), "1")
	expect429(t, dialRaw(t, s.Addr().String()), "1")
	if v := metricValue(t, reg, "wshub_eventloop_refused_connections_total", map[string]string{"reason": "ip_rate"}); v != 2 {
		t.Fatalf("refused{ip_rate} %v, want 2", v)
	}
	dialFrom(t, s, "127.0.0.3").Upgrade("/ws") // another source
	clock.Add(int64(time.Second / 3))
	upgrade()
	expect429(t, dialRaw(t, s.Addr().String()), "1")
	clock.Add(int64(time.Second))
	for range 3 {
		upgrade()
	}
	expect429(t, dialRaw(t, s.Addr().String()), "1")
}

// The same on the server's own clock: 0.5/s, a burst of one; the refused
// source retries until it is admitted, at least the two seconds of a
// token after its first upgrade.
func TestPerIPHandshakeRateRealClock(t *testing.T) {
	s := startServer(t, Config{HandshakesPerIPPerS: 0.5}, newTestHandler())
	start := time.Now()
	dialWS(t, s, "/ws")
	refused := 0
	for {
		c := dialRaw(t, s.Addr().String())
		c.Write([]byte(wstest.UpgradeRequest("test", "/ws")))
		resp := c.ReadResponse()
		if resp.StatusCode == 101 {
			break
		}
		if retry := resp.Header.Get("Retry-After"); resp.StatusCode != 429 || retry != "1" && retry != "2" {
			t.Fatalf("status %d, Retry-After %q, after %v", resp.StatusCode, retry, time.Since(start))
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("not admitted again within 10 s")
		}
		c.ExpectEOF(wstest.Timeout)
		refused++
		time.Sleep(50 * time.Millisecond) // a client's back-off between retries
	}
	if d := time.Since(start); d < 2*time.Second || refused == 0 {
		t.Fatalf("admitted again %v after the first upgrade (%d refusals), before the bucket refilled", d, refused)
	}
}
