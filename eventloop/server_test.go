package eventloop

import (
	"bytes"
	"github.com/wshub/wshub/wsproto/wstest"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wshub/wshub/hub"
)

// The hub programs against these interfaces; eventloop must not import hub.
var (
	_ hub.Conn   = (*Conn)(nil)
	_ hub.Poster = (*Loop)(nil)
)

func TestUpgradeAndTextRoundTrip(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, Config{}, h)
	c := dialWS(t, s, "/ws?token=abc&x=1", "Authorization: Bearer xyz", "Sec-WebSocket-Protocol: wshub.v1")
	for _, msg := range []string{"hello", `{"op":"ping"}`, strings.Repeat("é", 3000)} {
		c.Write(wstest.Frame(ws.OpText, true, true, []byte(msg)))
		f := c.NextFrame()
		if f.Header.OpCode != ws.OpText || string(f.Payload) != msg {
			t.Fatalf("echo: op %v payload %.40q, want %.40q", f.Header.OpCode, f.Payload, msg)
		}
	}
	h.mu.Lock()
	seen := h.seen
	h.mu.Unlock()
	if want := (connInfo{pathWS}); len(seen) != 1 || seen[0] != want {
		t.Fatalf("handler saw %+v, want [%+v]", seen, want)
	}
	// A client close is echoed with its code and the socket closed.
	c.Write(wstest.Frame(ws.OpClose, true, true, wstest.CloseBody(1000, "bye")))
	c.ExpectClose(1000, false)
	c.ExpectEOF(2 * time.Second)
	eventually(t, 2*time.Second, "OnClose", func() bool { return h.closed.Load() == 1 })
	eventually(t, 2*time.Second, "Conns()==0", func() bool { return s.Conns() == 0 })
}

func TestEchoEndpoint(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, Config{Echo: true}, h)
	c := dialWS(t, s, "/echo")
	c.Write(wstest.Frame(ws.OpBinary, true, true, []byte{0, 1, 2, 255}))
	if f := c.NextFrame(); f.Header.OpCode != ws.OpBinary || !bytes.Equal(f.Payload, []byte{0, 1, 2, 255}) {
		t.Fatalf("binary echo: %v %v", f.Header.OpCode, f.Payload)
	}
	// Fragmented text with a ping in the middle, one byte at a time.
	var in []byte
	in = append(in, wstest.Frame(ws.OpText, false, true, []byte("hel"))...)
	in = append(in, wstest.Frame(ws.OpPing, true, true, []byte("mid"))...)
	in = append(in, wstest.Frame(ws.OpContinuation, true, true, []byte("lo ✓"))...)
	for i := range in {
		c.Write(in[i : i+1])
	}
	if f := c.NextFrame(); f.Header.OpCode != ws.OpPong || string(f.Payload) != "mid" {
		t.Fatalf("pong: %v %q", f.Header.OpCode, f.Payload)
	}
	if f := c.NextFrame(); f.Header.OpCode != ws.OpText || string(f.Payload) != "hello ✓" {
		t.Fatalf("text echo: %v %q", f.Header.OpCode, f.Payload)
	}
	if n := h.opened.Load(); n != 0 {
		t.Fatalf("/echo reached the handler's OnOpen %d times", n)
	}
}

// Frames sent in the same packet as the upgrade request are not lost.
func TestPipelinedFrameAfterUpgrade(t *testing.T) {
	s := startServer(t, Config{Echo: true}, newTestHandler())
	for _, path := range []string{"/ws", "/echo"} {
		c := dialRaw(t, s.Addr().String())
		req := []byte(wstest.UpgradeRequest("test", path))
		req = append(req, wstest.Frame(ws.OpText, true, true, []byte("first"))...)
		req = append(req, wstest.Frame(ws.OpText, true, true, []byte("second"))...)
		c.Write(req)
		if resp := c.ReadResponse(); resp.StatusCode != 101 {
			t.Fatalf("%s: status %d", path, resp.StatusCode)
		}
		for _, want := range []string{"first", "second"} {
			if f := c.NextFrame(); string(f.Payload) != want {
				t.Fatalf("%s: got %q, want %q", path, f.Payload, want)
			}
		}
	}
}

func TestBadRequestsRejected(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startServer(t, Config{Origins: []string{"https://good.example"}, Metrics: reg}, newTestHandler())
	cases := []struct {
		name, req string
		code      int
		reason    string
	}{
		{"not an upgrade", "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", 400, "upgrade"},
		{"wrong path", wstest.UpgradeRequest("test", "/nope"), 404, "path"},
		{"echo off", wstest.UpgradeRequest("test", "/echo"), 404, "path"},
		{"wrong version", strings.Replace(wstest.UpgradeRequest("test", "/ws"), "Version: 13", "Version: 8", 1), 426, "version"},
		{"bad key", strings.Replace(wstest.UpgradeRequest("test", "/ws"), wstest.Key, "short", 1), 400, "key"},
		{"origin not allowed", wstest.UpgradeRequest("test", "/ws", "Origin: https://evil.example"), 403, "origin"},
		{"garbage", "\x16\x03\x01\x02\x00", 400, "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := metricValue(t, reg, "wshub_eventloop_handshake_failures_total", map[string]string{"reason": tc.reason})
			c := dialRaw(t, s.Addr().String())
			c.Write([]byte(tc.req))
			c.ExpectRejected(tc.code)
			after := metricValue(t, reg, "wshub_eventloop_handshake_failures_total", map[string]string{"reason": tc.reason})
			if after != before+1 {
				t.Fatalf("handshake failures{reason=%q}: %v -> %v", tc.reason, before, after)
			}
		})
	}
	// An allowed origin, and no origin at all (a non-browser client), upgrade.
	dialWS(t, s, "/ws", "Origin: https://GOOD.example")
	dialWS(t, s, "/ws")
}

// Every idle connection pays for a Conn: keep it within its size class.
func TestConnStaysSmall(t *testing.T) {
	if size := unsafe.Sizeof(Conn{}); size > 144 {
		t.Fatalf("Conn is %d bytes, over the 144-byte size class", size)
	}
}

// An idle connection must not keep the buffer a fragmented message was
// reassembled in: the read path calls the decoder until it asks for more.
func TestReassemblyBufferReleasedAfterMessage(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, Config{Loops: 1}, h)
	c := dialWS(t, s, "/ws")
	c.Write(append(wstest.Frame(ws.OpText, false, true, []byte("hel")), wstest.Frame(ws.OpContinuation, true, true, []byte("lo"))...))
	if f := c.NextFrame(); string(f.Payload) != "hello" {
		t.Fatalf("echo %q", f.Payload)
	}
	holding := make(chan bool, 1)
	conn := h.conns(0)[0]
	s.Loops()[0].Post(func() { holding <- conn.dec.Held() > 0 })
	if <-holding {
		t.Fatal("idle connection still holds its reassembly buffer")
	}
}
