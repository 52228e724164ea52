package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wshub/wshub/wsproto/wstest"
)

// Connection limits and anonymous access, configured by file, against the
// real binary: per source IP (connections, handshake rate), per user, and
// what a token-less client may do when anonymous connections are allowed.

// tryUpgrade sends an upgrade for path with extra headers and returns the
// response; on 101 the connection is returned open, otherwise it must be
// closed by the gateway.
func tryUpgrade(t *testing.T, addr, path string, extra ...string) (*http.Response, *client) {
	t.Helper()
	c := dialRaw(t, addr)
	c.Write([]byte(wstest.UpgradeRequest(addr, path, extra...)))
	resp := c.ReadResponse()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.ExpectEOF(wstest.Timeout)
		return resp, nil
	}
	return resp, c
}

// admitWithin retries an upgrade while it is refused with 429 until it is
// admitted, failing the test after within; it returns the open connection.
func admitWithin(t *testing.T, addr, path string, within time.Duration, extra ...string) *client {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, c := tryUpgrade(t, addr, path, extra...)
		if c != nil {
			return c
		}
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("upgrade while waiting for admission: HTTP %d, want 429 or 101", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			t.Fatalf("upgrade still refused with 429 after %v", within)
		}
		time.Sleep(50 * time.Millisecond) // paces the retries, as a client's backoff would
	}
}

// expectReply sends cmd and checks the reply: ok when code is 0, else an
// error with that code.
func expectReply(t *testing.T, c *client, cmd string, code float64) {
	t.Helper()
	c.sendText(cmd)
	m := c.next()
	switch {
	case code == 0 && m["op"] != "ok":
		t.Fatalf("%s: %v, want ok", cmd, m)
	case code != 0 && (m["op"] != "error" || m["code"] != code):
		t.Fatalf("%s: %v, want error %v", cmd, m, code)
	}
}

// TestPerIPConnectionLimit: with limits.max_conns_per_ip 2, the third
// upgrade from 127.0.0.1 gets 429 with Retry-After; once one of the two
// closes, a new one is admitted, and the source is full again.
func TestPerIPConnectionLimit(t *testing.T) {
	g := startGateway(t, "--config", writeConfig(t, "limits:\n  max_conns_per_ip: 2\n"))
	// A TCP connection that has not upgraded holds no slot.
	idle := dialRaw(t, g.addr)
	a := dial(t, g.addr)
	b := dial(t, g.addr)
	resp, _ := tryUpgrade(t, g.addr, "/ws")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "5" {
		t.Fatalf("third upgrade: HTTP %d, Retry-After %q; want 429, 5", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if n := metricWith(g, "wshub_eventloop_refused_connections_total", `reason="ip_conns"`); n != 1 {
		t.Fatalf("refused for ip_conns: %v, want 1", n)
	}
	// The two admitted are served, the refusal took nothing from them.
	for _, c := range []*client{a, b} {
		expectReply(t, c, `{"op":"subscribe","channel":"room","id":1}`, 0)
	}

	a.Conn.Close()
	c := admitWithin(t, g.addr, "/ws", 5*time.Second)
	expectReply(t, c, `{"op":"subscribe","channel":"room","id":1}`, 0)
	if resp, _ := tryUpgrade(t, g.addr, "/ws"); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("upgrade with two held again: HTTP %d, want 429", resp.StatusCode)
	}
	// The idle connection may still upgrade once a slot frees.
	b.Conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		idle.Write([]byte(wstest.UpgradeRequest(g.addr, "/ws")))
		resp := idle.ReadResponse()
		if resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if resp.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("upgrade of the idle connection after a close: HTTP %d", resp.StatusCode)
		}
		// A refused upgrade closes the connection: the retry is a new one.
		idle.ExpectEOF(wstest.Timeout)
		idle = dialRaw(t, g.addr)
		time.Sleep(50 * time.Millisecond) // paces the retries
	}
}

// TestPerIPHandshakeRate: with limits.handshakes_per_ip_per_s 2 (a burst of
// 2), a burst of upgrades from one source gets 429 with Retry-After past its
// first two, and an upgrade is admitted again once the bucket refills.
func TestPerIPHandshakeRate(t *testing.T) {
	g := startGateway(t, "--config", writeConfig(t, "limits:\n  handshakes_per_ip_per_s: 2\n"))
	// Six upgrades written at once, then read: the gateway decides them
	// within far less than the 500 ms a token takes to come back.
	const burst = 6
	conns := make([]net.Conn, burst)
	for i := range conns {
		c, err := net.DialTimeout("tcp", g.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	for _, c := range conns {
		if _, err := io.WriteString(c, wstest.UpgradeRequest(g.addr, "/ws")); err != nil {
			t.Fatal(err)
		}
	}
	admitted, refused := 0, 0
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("upgrade %d: %v", i, err)
		}
		switch resp.StatusCode {
		case http.StatusSwitchingProtocols:
			admitted++
		case http.StatusTooManyRequests:
			refused++
			if ra := resp.Header.Get("Retry-After"); ra != "1" {
				t.Errorf("upgrade %d: 429 with Retry-After %q, want 1 (a token comes back every 500 ms)", i, ra)
			}
		default:
			t.Fatalf("upgrade %d: HTTP %d", i, resp.StatusCode)
		}
	}
	t.Logf("burst of %d: %d admitted, %d refused", burst, admitted, refused)
	if admitted < 2 || refused < 1 || admitted+refused != burst {
		t.Fatalf("burst of %d upgrades: %d admitted, %d refused; want the burst of 2 admitted and the rest mostly refused", burst, admitted, refused)
	}
	if n := metricWith(g, "wshub_eventloop_refused_connections_total", `reason="ip_rate"`); n != float64(refused) {
		t.Fatalf("refused for ip_rate: %v, want %d", n, refused)
	}
	// The bucket refills at 2 a second: an upgrade is admitted again soon.
	refusedAt := time.Now()
	c := admitWithin(t, g.addr, "/ws", 3*time.Second)
	t.Logf("admitted again %v after the burst", time.Since(refusedAt))
	expectReply(t, c, `{"op":"subscribe","channel":"room","id":1}`, 0)
}

// TestMaxConnsPerUser: with auth.max_conns_per_user 2, a third connection
// with the same sub (another token) gets 429; another user is not affected;
// once one closes, the user connects again.
func TestMaxConnsPerUser(t *testing.T) {
	g := startGateway(t, "--config", writeConfig(t, "auth:\n  jwt_secret: ["+testSecret+"]\n  max_conns_per_user: 2\n"))
	tok := func(sub string, ttl time.Duration) string {
		return mint(t, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(ttl).Unix()})
	}
	a1 := dialPath(t, g.addr, "/ws?token="+tok("alice", time.Hour))
	a2 := dialPath(t, g.addr, "/ws", "Authorization: Bearer "+tok("alice", 2*time.Hour))
	if resp, _ := tryUpgrade(t, g.addr, "/ws?token="+tok("alice", 3*time.Hour)); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("alice's third connection: HTTP %d, want 429", resp.StatusCode)
	}
	if n := metricWith(g, "wshub_hub_upgrades_refused_total", `reason="max_conns_user"`); n != 1 {
		t.Fatalf("upgrades refused for max_conns_user: %v, want 1", n)
	}
	bob := dialPath(t, g.addr, "/ws?token="+tok("bob", time.Hour))
	for _, c := range []*client{a1, a2, bob} {
		expectReply(t, c, `{"op":"subscribe","channel":"room","id":1}`, 0)
	}

	a1.Conn.Close()
	a3 := admitWithin(t, g.addr, "/ws?token="+tok("alice", time.Hour), 5*time.Second)
	expectReply(t, a3, `{"op":"subscribe","channel":"room","id":1}`, 0)
	if resp, _ := tryUpgrade(t, g.addr, "/ws?token="+tok("alice", time.Hour)); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("alice's third connection again: HTTP %d, want 429", resp.StatusCode)
	}
	// A refused token-less or bad-token upgrade is a 401, not a count.
	if resp, _ := tryUpgrade(t, g.addr, "/ws"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: HTTP %d, want 401", resp.StatusCode)
	}
}

// TestAllowAnonymousFlag: with --jwt-secret and --allow-anonymous, a client
// without a token connects and gets only what the namespaces grant anyone;
// a bad token is still refused, not taken for anonymous.
func TestAllowAnonymousFlag(t *testing.T) {
	file := writeConfig(t, `
default_namespace: {subscribe: authenticated, publish: authenticated}
namespaces:
  public: {subscribe: anyone}
`)
	g := startGateway(t, "--jwt-secret", testSecret, "--allow-anonymous", "--config", file)
	anon := dial(t, g.addr)
	expectReply(t, anon, `{"op":"subscribe","channel":"public:x","id":1}`, 0)
	expectReply(t, anon, `{"op":"subscribe","channel":"lobby","id":2}`, 403)
	expectReply(t, anon, `{"op":"publish","channel":"public:x","data":"anon","id":3}`, 403) // publish: the default's authenticated
	expectReply(t, anon, `{"op":"refresh","token":"`+mint(t, jwt.MapClaims{"sub": "anon"})+`","id":4}`, 403)

	alice := dialPath(t, g.addr, "/ws?token="+mint(t, jwt.MapClaims{"sub": "alice"}))
	expectReply(t, alice, `{"op":"subscribe","channel":"lobby","id":1}`, 0)
	expectReply(t, alice, `{"op":"publish","channel":"public:x","data":"hi","id":2}`, 0)
	// The anonymous subscriber gets what an authenticated client publishes.
	if m := anon.next(); m["op"] != "message" || m["channel"] != "public:x" || m["data"] != "hi" {
		t.Fatalf("anonymous subscriber of public:x got %v", m)
	}

	forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice"}).SignedString([]byte("another-secret-of-at-least-32-bytes"))
	for _, tok := range []string{forged, "garbage", mint(t, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Minute).Unix()})} {
		if resp, _ := tryUpgrade(t, g.addr, "/ws?token="+tok); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bad token %.20s… with anonymous allowed: HTTP %d, want 401", tok, resp.StatusCode)
		}
	}
}
