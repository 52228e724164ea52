package wsproto

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// identicalHandshake is sameHandshake with Consumed compared on every status:
// a cursor returns exactly what ParseHandshake returns.
func identicalHandshake(a, b Handshake) bool {
	return sameHandshake(a, b) && a.Consumed == b.Consumed
}

// feedCursor grows a buffer chunk by chunk and calls one HandshakeCursor after
// each chunk, as a connection's read loop does, until it decides. At every
// chunk it compares the cursor's result with ParseHandshake on the same
// buffer, reporting a difference via fail. It returns the decision and the
// length of the buffer that brought it.
func feedCursor(input []byte, cfg *HandshakeConfig, next chunker, fail func(string, ...any)) (Handshake, int) {
	var c HandshakeCursor
	var buf []byte
	hs := Handshake{Status: HandshakeNeedMore}
	for len(input) > 0 && hs.Status == HandshakeNeedMore {
		k := next(len(input))
		buf, input = append(buf, input[:k]...), input[k:]
		hs = c.Parse(buf, cfg)
		if want := ParseHandshake(buf, cfg); !identicalHandshake(hs, want) {
			fail("after %d bytes: cursor gives %+v, ParseHandshake %+v", len(buf), hs, want)
			return hs, len(buf)
		}
	}
	// Decided: the cursor does not move, so the same or a longer buffer
	// gives the same outcome.
	full := append(buf, input...)
	if again := c.Parse(full, cfg); !identicalHandshake(again, ParseHandshake(full, cfg)) {
		fail("after the decision, %d bytes give %+v", len(full), again)
	}
	return hs, len(buf)
}

func TestHandshakeCursor(t *testing.T) {
	for _, tc := range handshakeCases() {
		t.Run(tc.name, func(t *testing.T) {
			cfg, input := tc.config(), tc.input()
			want := ParseHandshake(input, cfg)
			for name, ch := range chunkers() {
				got, _ := feedCursor(input, cfg, ch, t.Errorf)
				if !sameHandshake(got, want) {
					t.Errorf("%s: got %+v, whole input gave %+v", name, got, want)
				}
			}
		})
	}
}

// TestHandshakeCursorDecidesEarly checks that a trickled request is decided at
// the byte that decides it, not later: the cursor's early rejects are
// ParseHandshake's (TestHandshakeCursor checks every prefix; this pins the
// points that matter to the gateway).
func TestHandshakeCursorDecidesEarly(t *testing.T) {
	small := &HandshakeConfig{MaxRequestBytes: 100, MaxHeaders: 2}
	tests := []struct {
		name   string
		req    string
		cfg    *HandshakeConfig
		at     int // prefix length that decides
		reason string
	}{
		{"bad method at the request line's end", request("POST /ws HTTP/1.1", goodHeaders...), nil, len("POST /ws HTTP/1.1\r\n"), "method"},
		{"unknown path at the request line's end", request("GET /x HTTP/1.1", goodHeaders...), nil, len("GET /x HTTP/1.1\r\n"), "path"},
		{"TLS ClientHello at its first byte", "\x16\x03\x01\x02\x00", nil, 1, "malformed"},
		{"non-token method byte", "GE(T /ws HTTP/1.1\r\n", nil, 3, "malformed"},
		{"malformed header at its LF", request("GET /ws HTTP/1.1", "Host: h", "Bad line", "Upgrade: websocket"), nil, len("GET /ws HTTP/1.1\r\nHost: h\r\nBad line\r\n"), "malformed"},
		{"third header over a cap of 2", request("GET /ws HTTP/1.1", goodHeaders...), small, len("GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"), "headers"},
		{"oversize at the cap", "GET /ws HTTP/1.1\r\nX-Big: " + strings.Repeat("a", 200), &HandshakeConfig{MaxRequestBytes: 100}, 100, "too_large"},
		{"valid request at its last byte", request("GET /ws HTTP/1.1", goodHeaders...) + "trailing", nil, len(request("GET /ws HTTP/1.1", goodHeaders...)), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg == nil {
				cfg = &testHandshakeConfig
			}
			hs, at := feedCursor([]byte(tt.req), cfg, byteByByte, t.Errorf)
			if at != tt.at || hs.Reason != tt.reason {
				t.Errorf("decided %q after %d bytes, want %q after %d", hs.Reason, at, tt.reason, tt.at)
			}
		})
	}
}

func TestHandshakeCursorReset(t *testing.T) {
	req := []byte(request("GET /ws HTTP/1.1", goodHeaders...))
	var c HandshakeCursor
	if hs := c.Parse(req[:40], nil); hs.Status != HandshakeNeedMore {
		t.Fatalf("prefix: %+v", hs)
	}
	// A new request on the same cursor after Reset.
	c.Reset()
	other := []byte(request("GET /elsewhere HTTP/1.1", goodHeaders...))
	if hs := c.Parse(other, &testHandshakeConfig); hs.Code != 404 {
		t.Fatalf("after Reset: %+v", hs)
	}
	// A buffer shorter than what was examined starts over.
	c.Reset()
	c.Parse(req[:60], nil)
	if hs, want := c.Parse(req[:10], nil), ParseHandshake(req[:10], nil); !identicalHandshake(hs, want) {
		t.Fatalf("shorter buffer: %+v, want %+v", hs, want)
	}
	if hs := c.Parse(req, nil); hs.Status != HandshakeDone || hs.Consumed != len(req) {
		t.Fatalf("nil cfg: %+v", hs)
	}
}

func TestHandshakeCursorAllocs(t *testing.T) {
	req := []byte(request("GET /ws?token=abc HTTP/1.1", with("Cookie: "+strings.Repeat("k=v; ", 100))...))
	var c HandshakeCursor
	trickle := func(n int) {
		c.Reset()
		for i := 1; i <= n; i++ {
			c.Parse(req[:i], &testHandshakeConfig)
		}
	}
	if allocs := testing.AllocsPerRun(20, func() { trickle(len(req) - 1) }); allocs != 0 {
		t.Fatalf("%v allocations for a trickled request's NeedMore calls", allocs)
	}
	if allocs := testing.AllocsPerRun(20, func() { trickle(len(req)) }); allocs > 1 {
		t.Fatalf("%v allocations per trickled handshake, want 1 (the response)", allocs)
	}
}

// trickleRequest is a browser-like upgrade of about 300 bytes; with cookie > 0
// it carries a Cookie header of about that many bytes.
func trickleRequest(cookie int) []byte {
	h := []string{
		"Host: gateway.example.com",
		"Upgrade: websocket",
		"Connection: Upgrade",
		"Origin: https://app.example.com",
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0",
		"Sec-WebSocket-Version: 13",
		"Sec-WebSocket-Key: " + rfcKey,
		"Sec-WebSocket-Protocol: wshub.v1",
	}
	if cookie > 0 {
		var b strings.Builder
		for i := 0; b.Len() < cookie; i++ {
			fmt.Fprintf(&b, "pref%03d=%s; ", i, strings.Repeat("x", 40))
		}
		h = append(h, "Cookie: "+strings.TrimSuffix(b.String(), "; "))
	}
	return []byte(request("GET /ws?token=eyJhbGciOiJIUzI1NiJ9.e30.x HTTP/1.1", h...))
}

// TestHandshakeCursorLinearWork counts the bytes the line loop examines
// (lineLoop.work) over a trickled request: through a cursor it is a small
// multiple of the request's length whatever the chunking, where calling
// ParseHandshake after every byte is quadratic. A deterministic stand-in for
// BenchmarkHandshakeTrickle.
func TestHandshakeCursorLinearWork(t *testing.T) {
	const factor = 5 // LF search and line checks by the cursor, then the same by the whole parse: 4
	reqs := map[string][]byte{
		"small":       trickleRequest(0),
		"cookie":      trickleRequest(6 << 10),
		"many lines":  []byte(request("GET /ws HTTP/1.1", append(with(), manyHeaders(55)...)...)),
		"long target": []byte(request("GET /ws?"+strings.Repeat("q", 4000)+" HTTP/1.1", goodHeaders...)),
	}
	for name, req := range reqs {
		if len(req) > DefaultMaxRequestBytes {
			t.Fatalf("%s: %d bytes is over the cap", name, len(req))
		}
		for cname, ch := range map[string]chunker{"bytewise": byteByByte, "random": randomChunks(3)} {
			var c HandshakeCursor
			work, calls := 0, 0
			var hs Handshake
			for n := 0; n < len(req); {
				n += ch(len(req) - n)
				var l lineLoop
				hs = c.parse(&l, req[:n], nil, nil)
				work += l.work
				calls++
			}
			if hs.Status != HandshakeDone {
				t.Fatalf("%s %s: %+v", name, cname, hs)
			}
			if work > factor*len(req) {
				t.Errorf("%s %s: %d calls examined %d bytes of a %d-byte request (over %dx)", name, cname, calls, work, len(req), factor)
			}
			t.Logf("%s %s: %d calls examined %d bytes of a %d-byte request (%.1fx)", name, cname, calls, work, len(req), float64(work)/float64(len(req)))
		}
		// In one read, the cursor parses the request once, as ParseHandshake.
		var c HandshakeCursor
		var l lineLoop
		c.parse(&l, req, nil, nil)
		if _, want := parseHandshake(req, nil); l.work != want {
			t.Errorf("%s: the whole request in one read examined %d bytes, ParseHandshake %d", name, l.work, want)
		}
		// The counter sees the stateless parser's quadratic work, so the
		// bound above means something.
		stateless := 0
		for n := 1; n <= len(req); n++ {
			_, w := parseHandshake(req[:n], nil)
			stateless += w
		}
		if stateless < len(req)*len(req)/2 {
			t.Errorf("%s: ParseHandshake per byte examined only %d bytes of a %d-byte request", name, stateless, len(req))
		}
		t.Logf("%s: ParseHandshake per byte examined %d bytes (%.0fx)", name, stateless, float64(stateless)/float64(len(req)))
	}
}

// manyHeaders returns n short header lines.
func manyHeaders(n int) []string {
	h := make([]string, n)
	for i := range h {
		h[i] = "X-A: b"
	}
	return h
}

// parseHandshake is ParseHandshake; it also returns the work done (see
// lineLoop.work).
func parseHandshake(buf []byte, cfg *HandshakeConfig) (Handshake, int) {
	var l lineLoop
	hs := l.parse(buf, cfg)
	return hs, l.work
}

func TestParseIntoReusesOut(t *testing.T) {
	req := []byte(request("GET /ws?token=abc HTTP/1.1", with("Authorization: Bearer xyz")...))
	out := make([]byte, 0, MaxResponseRoom+256)
	var c HandshakeCursor
	hs := c.ParseInto(req, nil, out)
	if hs.Status != HandshakeDone || hs.Query != "token=abc" || hs.Authorization != "Bearer xyz" {
		t.Fatalf("ParseInto: %+v", hs)
	}
	if &hs.Response[0] != &out[:1][0] {
		t.Fatal("the response was not built in out")
	}
	want := ParseHandshake(req, nil)
	if !bytes.Equal(hs.Response, want.Response) {
		t.Fatalf("response %q, want %q", hs.Response, want.Response)
	}
	if n := testing.AllocsPerRun(100, func() {
		c.Reset()
		c.ParseInto(req, nil, out)
	}); n != 0 {
		t.Fatalf("ParseInto allocates %v times", n)
	}
	// Too small an out: a fresh allocation, same result.
	c.Reset()
	if hs := c.ParseInto(req, nil, make([]byte, 0, 8)); !bytes.Equal(hs.Response, want.Response) {
		t.Fatalf("small out: %q", hs.Response)
	}
}
