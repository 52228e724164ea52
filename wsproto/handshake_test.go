package wsproto

import (
	"bytes"
	"strings"
	"testing"
)

const rfcKey = "dGhlIHNhbXBsZSBub25jZQ==" // RFC 6455 §1.3 example
const rfcAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

// request builds a handshake from a request line and header lines.
func request(line string, headers ...string) string {
	return line + "\r\n" + strings.Join(headers, "\r\n") + "\r\n\r\n"
}

// goodHeaders are the headers of a minimal valid upgrade.
var goodHeaders = []string{
	"Host: example.com",
	"Upgrade: websocket",
	"Connection: Upgrade",
	"Sec-WebSocket-Key: " + rfcKey,
	"Sec-WebSocket-Version: 13",
}

// with returns goodHeaders plus extra.
func with(extra ...string) []string {
	return append(append([]string{}, goodHeaders...), extra...)
}

// without returns goodHeaders minus those starting with prefix, plus extra.
func without(prefix string, extra ...string) []string {
	var out []string
	for _, h := range goodHeaders {
		if !strings.HasPrefix(h, prefix) {
			out = append(out, h)
		}
	}
	return append(out, extra...)
}

var testHandshakeConfig = HandshakeConfig{
	Paths:       []string{"/ws", "/echo"},
	CheckOrigin: func(o string) bool { return o != "https://evil.example" },
}

type handshakeCase struct {
	name    string
	req     string
	cfg     *HandshakeConfig // nil = testHandshakeConfig
	status  HandshakeStatus
	code    int
	reason  string
	check   func(t *testing.T, hs Handshake) // extra checks on Done
	trailer string                           // bytes sent after the request (pipelined frames)
}

// config is the case's HandshakeConfig, the shared test one by default.
func (tc *handshakeCase) config() *HandshakeConfig {
	if tc.cfg == nil {
		return &testHandshakeConfig
	}
	return tc.cfg
}

// input is what the client sends: the request and whatever follows it.
func (tc *handshakeCase) input() []byte { return []byte(tc.req + tc.trailer) }

func handshakeCases() []handshakeCase {
	tooMany := append([]string{}, goodHeaders...)
	for i := 0; i < 60; i++ {
		tooMany = append(tooMany, "X-Pad: 1")
	}
	return []handshakeCase{
		{
			name:   "minimal",
			req:    request("GET /ws HTTP/1.1", goodHeaders...),
			status: HandshakeDone,
			code:   101,
			check: func(t *testing.T, hs Handshake) {
				want := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + rfcAccept + "\r\n\r\n"
				if string(hs.Response) != want || hs.Path != "/ws" || hs.Query != "" || hs.Subprotocol || hs.Authorization != "" {
					t.Errorf("got %+v", hs)
				}
			},
		},
		{
			name:    "pipelined frames after the request are not consumed",
			req:     request("GET /ws HTTP/1.1", goodHeaders...),
			trailer: string(wire(text("first"))),
			status:  HandshakeDone,
			code:    101,
		},
		{
			name:   "lowercase names, token lists, odd spacing",
			req:    request("GET /echo?token=abc&x=1 HTTP/1.1", "host:example.com", "upgrade: WebSocket", "connection:  keep-alive ,\tUpgrade ", "sec-websocket-key: "+rfcKey+"  ", "sec-websocket-version:13", "authorization: Bearer xyz"),
			status: HandshakeDone,
			code:   101,
			check: func(t *testing.T, hs Handshake) {
				if hs.Path != "/echo" || hs.Query != "token=abc&x=1" || hs.Authorization != "Bearer xyz" {
					t.Errorf("got path %q query %q auth %q", hs.Path, hs.Query, hs.Authorization)
				}
			},
		},
		{
			name:   "Connection and Upgrade split over several lines",
			req:    request("GET /ws HTTP/1.1", "Host: h", "Upgrade: h2c", "Upgrade: websocket", "Connection: keep-alive", "Connection: upgrade", "Sec-WebSocket-Key: "+rfcKey, "Sec-WebSocket-Version: 13"),
			status: HandshakeDone,
			code:   101,
		},
		{
			name:   "subprotocol in a list",
			req:    request("GET /ws HTTP/1.1", with("Sec-WebSocket-Protocol: chat, wshub.v1,superchat")...),
			status: HandshakeDone,
			code:   101,
			check: func(t *testing.T, hs Handshake) {
				if !hs.Subprotocol || !bytes.Contains(hs.Response, []byte("\r\nSec-WebSocket-Protocol: wshub.v1\r\n")) {
					t.Errorf("subprotocol not echoed: %q", hs.Response)
				}
			},
		},
		{
			name:   "subprotocol on a second header line",
			req:    request("GET /ws HTTP/1.1", with("Sec-WebSocket-Protocol: chat", "sec-websocket-protocol: wshub.v1")...),
			status: HandshakeDone,
			code:   101,
			check: func(t *testing.T, hs Handshake) {
				if !hs.Subprotocol {
					t.Error("subprotocol not seen")
				}
			},
		},
		{
			name:   "other subprotocols only (names are case-sensitive)",
			req:    request("GET /ws HTTP/1.1", with("Sec-WebSocket-Protocol: chat, WSHUB.V1")...),
			status: HandshakeDone,
			code:   101,
			check: func(t *testing.T, hs Handshake) {
				if hs.Subprotocol || bytes.Contains(hs.Response, []byte("Sec-WebSocket-Protocol")) {
					t.Errorf("unexpected subprotocol: %q", hs.Response)
				}
			},
		},
		{
			name:   "bare LF line endings",
			req:    strings.ReplaceAll(request("GET /ws HTTP/1.1", goodHeaders...), "\r\n", "\n"),
			status: HandshakeDone,
			code:   101,
		},
		{
			name:   "origin allowed",
			req:    request("GET /ws HTTP/1.1", with("Origin: https://good.example")...),
			status: HandshakeDone,
			code:   101,
		},
		{
			name:   "any path when Paths is empty",
			req:    request("GET /any/where?q HTTP/1.1", goodHeaders...),
			cfg:    &HandshakeConfig{},
			status: HandshakeDone,
			code:   101,
			check: func(t *testing.T, hs Handshake) {
				if hs.Path != "/any/where" || hs.Query != "q" {
					t.Errorf("path %q query %q", hs.Path, hs.Query)
				}
			},
		},
		{
			name:   "HTTP/1.2 is later than 1.1",
			req:    request("GET /ws HTTP/1.2", goodHeaders...),
			status: HandshakeDone,
			code:   101,
		},
		{name: "POST", req: request("POST /ws HTTP/1.1", goodHeaders...), status: HandshakeReject, code: 400, reason: "method"},
		{name: "HTTP/1.0", req: request("GET /ws HTTP/1.0", goodHeaders...), status: HandshakeReject, code: 400, reason: "http_version"},
		{name: "bad HTTP version syntax", req: request("GET /ws HTTP/11", goodHeaders...), status: HandshakeReject, code: 400, reason: "malformed"},
		{name: "unknown path", req: request("GET /other HTTP/1.1", goodHeaders...), status: HandshakeReject, code: 404, reason: "path"},
		{name: "path with trailing slash", req: request("GET /ws/ HTTP/1.1", goodHeaders...), status: HandshakeReject, code: 404, reason: "path"},
		{name: "plain GET of another path is 404", req: request("GET /favicon.ico HTTP/1.1", "Host: h"), status: HandshakeReject, code: 404, reason: "path"},
		{name: "plain GET of /ws is 400", req: request("GET /ws HTTP/1.1", "Host: h"), status: HandshakeReject, code: 400, reason: "upgrade"},
		{name: "no Host", req: request("GET /ws HTTP/1.1", without("Host")...), status: HandshakeReject, code: 400, reason: "host"},
		{name: "two Hosts", req: request("GET /ws HTTP/1.1", with("Host: other")...), status: HandshakeReject, code: 400, reason: "host"},
		{name: "no Upgrade", req: request("GET /ws HTTP/1.1", without("Upgrade")...), status: HandshakeReject, code: 400, reason: "upgrade"},
		{name: "Upgrade to something else", req: request("GET /ws HTTP/1.1", without("Upgrade", "Upgrade: websocket2")...), status: HandshakeReject, code: 400, reason: "upgrade"},
		{name: "Connection without upgrade", req: request("GET /ws HTTP/1.1", without("Connection", "Connection: keep-alive, upgraded")...), status: HandshakeReject, code: 400, reason: "connection"},
		{name: "no version", req: request("GET /ws HTTP/1.1", without("Sec-WebSocket-Version")...), status: HandshakeReject, code: 400, reason: "version"},
		{name: "version 8", req: request("GET /ws HTTP/1.1", without("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8")...), status: HandshakeReject, code: 426, reason: "version"},
		{name: "two versions", req: request("GET /ws HTTP/1.1", with("Sec-WebSocket-Version: 13")...), status: HandshakeReject, code: 426, reason: "version"},
		{name: "no key", req: request("GET /ws HTTP/1.1", without("Sec-WebSocket-Key")...), status: HandshakeReject, code: 400, reason: "key"},
		{name: "key not base64", req: request("GET /ws HTTP/1.1", without("Sec-WebSocket-Key", "Sec-WebSocket-Key: !GhlIHNhbXBsZSBub25jZQ==")...), status: HandshakeReject, code: 400, reason: "key"},
		{name: "key of 15 bytes", req: request("GET /ws HTTP/1.1", without("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ")...), status: HandshakeReject, code: 400, reason: "key"},
		{name: "key of 17 bytes", req: request("GET /ws HTTP/1.1", without("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZXg=")...), status: HandshakeReject, code: 400, reason: "key"},
		{name: "two keys", req: request("GET /ws HTTP/1.1", with("Sec-WebSocket-Key: "+rfcKey)...), status: HandshakeReject, code: 400, reason: "key"},
		{name: "origin refused", req: request("GET /ws HTTP/1.1", with("Origin: https://evil.example")...), status: HandshakeReject, code: 403, reason: "origin"},
		{name: "obsolete line folding", req: request("GET /ws HTTP/1.1", with("X-Long: a", " b")...), status: HandshakeReject, code: 400, reason: "malformed"},
		{name: "space before colon", req: request("GET /ws HTTP/1.1", with("Host : h")...), status: HandshakeReject, code: 400, reason: "malformed"},
		{name: "header without colon", req: request("GET /ws HTTP/1.1", with("Nonsense")...), status: HandshakeReject, code: 400, reason: "malformed"},
		{name: "control byte in a value", req: request("GET /ws HTTP/1.1", with("X-A: a\x01b")...), status: HandshakeReject, code: 400, reason: "malformed"},
		{name: "bare CR in a line", req: request("GET /ws HTTP/1.1", with("X-A: a\rb")...), status: HandshakeReject, code: 400, reason: "malformed"},
		{name: "empty line before the request", req: "\r\n" + request("GET /ws HTTP/1.1", goodHeaders...), status: HandshakeReject, code: 400, reason: "malformed"},
		{name: "double space in request line", req: request("GET  /ws HTTP/1.1", goodHeaders...), status: HandshakeReject, code: 400, reason: "malformed"},
		{name: "TLS ClientHello refused before a line ends", req: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", status: HandshakeReject, code: 400, reason: "malformed"},
		{name: "too many headers", req: request("GET /ws HTTP/1.1", tooMany...), status: HandshakeReject, code: 400, reason: "headers"},
		{name: "request over the byte cap", req: request("GET /ws HTTP/1.1", with("X-Big: "+strings.Repeat("a", 8200))...), status: HandshakeReject, code: 431, reason: "too_large"},
		{name: "never-ending request line", req: "GET /" + strings.Repeat("a", 9000), status: HandshakeReject, code: 431, reason: "too_large"},
		{name: "small custom cap", req: request("GET /ws HTTP/1.1", goodHeaders...), cfg: &HandshakeConfig{MaxRequestBytes: 100}, status: HandshakeReject, code: 431, reason: "too_large"},
		{name: "incomplete request", req: request("GET /ws HTTP/1.1", goodHeaders...)[:50], status: HandshakeNeedMore},
	}
}

// feedHandshake grows a buffer chunk by chunk, calling ParseHandshake after
// each chunk until it decides, as a connection's read loop does.
func feedHandshake(input []byte, cfg *HandshakeConfig, next chunker) Handshake {
	var buf []byte
	hs := Handshake{Status: HandshakeNeedMore}
	for len(input) > 0 && hs.Status == HandshakeNeedMore {
		k := next(len(input))
		buf, input = append(buf, input[:k]...), input[k:]
		hs = ParseHandshake(buf, cfg)
		if hs.Consumed > len(buf) {
			panic("Consumed beyond the buffer")
		}
	}
	return hs
}

// sameHandshake compares outcomes; Consumed only matters for Done (a Reject
// before the request is complete reports how far it looked).
func sameHandshake(a, b Handshake) bool {
	if a.Status != b.Status || a.Code != b.Code || a.Reason != b.Reason || !bytes.Equal(a.Response, b.Response) ||
		a.Path != b.Path || a.Query != b.Query || a.Authorization != b.Authorization || a.Subprotocol != b.Subprotocol ||
		a.Deflate != b.Deflate || a.Compressed != b.Compressed {
		return false
	}
	return a.Status != HandshakeDone || a.Consumed == b.Consumed
}

func TestHandshake(t *testing.T) {
	for _, tc := range handshakeCases() {
		t.Run(tc.name, func(t *testing.T) {
			cfg, input := tc.config(), tc.input()
			hs := ParseHandshake(input, cfg)
			if hs.Status != tc.status || hs.Code != tc.code || hs.Reason != tc.reason {
				t.Fatalf("got status %d code %d reason %q, want %d %d %q", hs.Status, hs.Code, hs.Reason, tc.status, tc.code, tc.reason)
			}
			switch hs.Status {
			case HandshakeDone:
				if hs.Consumed != len(tc.req) {
					t.Errorf("Consumed %d, request is %d bytes", hs.Consumed, len(tc.req))
				}
			case HandshakeReject:
				checkRejectResponse(t, hs)
			}
			if tc.check != nil {
				tc.check(t, hs)
			}
			for name, ch := range chunkers() {
				if got := feedHandshake(input, cfg, ch); !sameHandshake(got, hs) {
					t.Errorf("%s: got %+v, whole input gave %+v", name, got, hs)
				}
			}
		})
	}
}

func checkRejectResponse(t *testing.T, hs Handshake) {
	t.Helper()
	r := string(hs.Response)
	wantStart := "HTTP/1.1 " + itoa(hs.Code) + " "
	if !strings.HasPrefix(r, wantStart) || !strings.Contains(r, "\r\nConnection: close\r\n") ||
		!strings.Contains(r, "\r\nContent-Length: 0\r\n") || !strings.HasSuffix(r, "\r\n\r\n") {
		t.Errorf("bad error response %q", r)
	}
	if got := strings.Contains(r, "\r\nSec-WebSocket-Version: 13\r\n"); got != (hs.Code == 426) {
		t.Errorf("version header presence %v in %q", got, r)
	}
}

func itoa(n int) string {
	return string(rune('0'+n/100)) + string(rune('0'+n/10%10)) + string(rune('0'+n%10))
}

// TestHandshakeResultOutlivesBuffer checks that nothing in a Done result
// aliases the input, which the event loop reuses for the next read.
func TestHandshakeResultOutlivesBuffer(t *testing.T) {
	buf := []byte(request("GET /ws?token=t1 HTTP/1.1", with("Authorization: Bearer abc")...))
	hs := ParseHandshake(buf, &HandshakeConfig{})
	for i := range buf {
		buf[i] = 'Z'
	}
	if hs.Path != "/ws" || hs.Query != "token=t1" || hs.Authorization != "Bearer abc" || !bytes.Contains(hs.Response, []byte(rfcAccept)) {
		t.Fatalf("result changed with the buffer: %+v", hs)
	}
}

func TestAcceptKey(t *testing.T) {
	if got := AcceptKey([]byte(rfcKey)); string(got[:]) != rfcAccept {
		t.Fatalf("AcceptKey = %s, want %s", got, rfcAccept)
	}
}

func TestHandshakeAllocs(t *testing.T) {
	req := []byte(request("GET /ws?token=abc HTTP/1.1", goodHeaders...))
	allocs := testing.AllocsPerRun(100, func() { ParseHandshake(req, &testHandshakeConfig) })
	if allocs > 1 {
		t.Fatalf("%v allocations per handshake, want 1 (the response)", allocs)
	}
	bad := []byte(request("GET /nope HTTP/1.1", goodHeaders...))
	if allocs := testing.AllocsPerRun(100, func() { ParseHandshake(bad, &testHandshakeConfig) }); allocs != 0 {
		t.Fatalf("%v allocations per rejection", allocs)
	}
}
