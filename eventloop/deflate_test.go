package eventloop

import (
	"bytes"
	"compress/flate"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/wshub/wshub/wsproto/wstest"
)

// Compressed frames for the raw client are deflated with compress/flate,
// independently of the gateway's inflater.

// deflated is s as a permessage-deflate client sends it: raw DEFLATE with
// a sync flush, its trailing 00 00 ff ff removed (RFC 7692 §7.2.1).
func deflated(s string) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	w.Write([]byte(s))
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// withRSV1 sets RSV1 on an encoded frame.
func withRSV1(frame []byte) []byte {
	frame[0] |= 0x40
	return frame
}

// payloadOf is a server frame's message: inflated when it came compressed
// (the gateway may compress what it sends to a client that negotiated).
func payloadOf(t *testing.T, f ws.Frame) string {
	t.Helper()
	if f.Header.Rsv&0x4 == 0 {
		return string(f.Payload)
	}
	r := flate.NewReader(io.MultiReader(bytes.NewReader(f.Payload), strings.NewReader("\x00\x00\xff\xff\x01\x00\x00\xff\xff")))
	p, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("compressed frame from the server: %v", err)
	}
	return string(p)
}

// upgradeAnswer upgrades c on path with extra header lines and returns the
// Sec-WebSocket-Extensions value of the 101.
func upgradeAnswer(t *testing.T, c *client, path string, extra ...string) string {
	t.Helper()
	c.Write([]byte(wstest.UpgradeRequest(c.Conn.RemoteAddr().String(), path, extra...)))
	resp := c.ReadResponse()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: status %d", resp.StatusCode)
	}
	return resp.Header.Get("Sec-WebSocket-Extensions")
}

const offerChromium = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"

// TestCompressedEcho: with Compression, a Chromium-like offer is accepted
// with no context takeover either way, and compressed messages, whole or
// fragmented around a ping, are inflated and echoed.
func TestCompressedEcho(t *testing.T) {
	s := startServer(t, Config{Echo: true, Compression: true}, newTestHandler())
	c := dialRaw(t, s.Addr().String())
	want := "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	if got := upgradeAnswer(t, c, "/echo", offerChromium); got != want {
		t.Fatalf("Sec-WebSocket-Extensions %q, want %q", got, want)
	}
	msg := strings.Repeat(`{"op":"publish","channel":"room:1","data":"héllo"}`, 40)
	c.Write(withRSV1(wstest.Frame(ws.OpText, true, true, deflated(msg))))
	if f := c.NextFrame(); f.Header.OpCode != ws.OpText || payloadOf(t, f) != msg {
		t.Fatalf("echo of a compressed message: %v %q", f.Header.OpCode, f.Payload)
	}
	p := deflated(msg)
	c.Write(append(append(withRSV1(wstest.Frame(ws.OpBinary, false, true, p[:10])),
		wstest.Frame(ws.OpPing, true, true, []byte("mid"))...),
		wstest.Frame(ws.OpContinuation, true, true, p[10:])...))
	if f := c.NextFrame(); f.Header.OpCode != ws.OpPong || string(f.Payload) != "mid" {
		t.Fatalf("pong: %v %q", f.Header.OpCode, f.Payload)
	}
	if f := c.NextFrame(); f.Header.OpCode != ws.OpBinary || payloadOf(t, f) != msg {
		t.Fatalf("echo of a fragmented compressed message: %v %d bytes", f.Header.OpCode, len(f.Payload))
	}
	c.Write(wstest.Frame(ws.OpText, true, true, []byte("plain")))
	if f := c.NextFrame(); payloadOf(t, f) != "plain" {
		t.Fatalf("echo of a plain message: %q", f.Payload)
	}
}

// TestGorillaCompressed: gorilla/websocket, compressing what it writes,
// negotiates and is echoed.
func TestGorillaCompressed(t *testing.T) {
	s := startServer(t, Config{Echo: true, Compression: true}, newTestHandler())
	d := websocket.Dialer{EnableCompression: true, HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial("ws://"+s.Addr().String()+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
		t.Fatalf("not negotiated: %q", ext)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, n := range []int{0, 10, 5000, 60000} {
		msg := strings.Repeat("wshub ", n/6+1)[:n]
		if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, got, err := conn.ReadMessage(); err != nil || string(got) != msg {
			t.Fatalf("%d bytes: got %d bytes, %v", n, len(got), err)
		}
	}
}

// TestCompressionOff: without Compression an offer is ignored, and RSV1 is
// a protocol error.
func TestCompressionOff(t *testing.T) {
	s := startServer(t, Config{Echo: true}, newTestHandler())
	c := dialRaw(t, s.Addr().String())
	if got := upgradeAnswer(t, c, "/echo", offerChromium); got != "" {
		t.Fatalf("Sec-WebSocket-Extensions %q without Compression", got)
	}
	c.Write(withRSV1(wstest.Frame(ws.OpText, true, true, deflated("hello"))))
	c.ExpectClose(1002, false)
}

// TestCompressionCloseCodes: what a connection that negotiated is closed
// with, for bad compressed input.
func TestCompressionCloseCodes(t *testing.T) {
	s := startServer(t, Config{Echo: true, Compression: true, MaxMessage: 4096, CloseTimeout: time.Minute}, newTestHandler())
	p := deflated(strings.Repeat("x", 3000))
	for _, tc := range []struct {
		name string
		in   []byte
		code uint16
	}{
		{"inflates past MaxMessage", withRSV1(wstest.Frame(ws.OpBinary, true, true, deflated(strings.Repeat("a", 1<<20)))), 1009},
		{"corrupt deflate data", withRSV1(wstest.Frame(ws.OpText, true, true, []byte{0xff, 0xff, 0xff})), 1007},
		{"truncated deflate stream", withRSV1(wstest.Frame(ws.OpText, true, true, deflated(strings.Repeat("abc", 500))[:8])), 1007},
		{"not UTF-8 once inflated", withRSV1(wstest.Frame(ws.OpText, true, true, deflated("\xff\xfe"))), 1007},
		{"RSV1 on a continuation", append(withRSV1(wstest.Frame(ws.OpText, false, true, p[:5])), withRSV1(wstest.Frame(ws.OpContinuation, true, true, p[5:]))...), 1002},
		{"RSV1 on a ping", withRSV1(wstest.Frame(ws.OpPing, true, true, nil)), 1002},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, s.Addr().String())
			upgradeAnswer(t, c, "/echo", offerChromium)
			c.Write(tc.in)
			c.ExpectClose(tc.code, false)
			c.ExpectEOF(2 * time.Second)
		})
	}
}

// TestMalformedOffer: a Sec-WebSocket-Extensions header that breaks RFC
// 6455's grammar is refused with 400 when Compression is on, and counted.
func TestMalformedOffer(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startServer(t, Config{Compression: true, Metrics: reg}, newTestHandler())
	c := dialRaw(t, s.Addr().String())
	c.Write([]byte(wstest.UpgradeRequest(s.Addr().String(), "/ws", `Sec-WebSocket-Extensions: permessage-deflate; a="b`)))
	c.ExpectRejected(http.StatusBadRequest)
	if v := metricValue(t, reg, "wshub_eventloop_handshake_failures_total", map[string]string{"reason": "extensions"}); v != 1 {
		t.Fatalf("handshake failures for extensions: %v", v)
	}
}

// compressedHandler records, in OnOpen, what Compressed says, and passes
// every text message on.
type compressedHandler struct {
	opened chan bool
	texts  chan string
}

func (h *compressedHandler) OnOpen(c *Conn)             { h.opened <- c.Compressed() }
func (h *compressedHandler) OnText(c *Conn, msg []byte) { h.texts <- string(msg) }
func (h *compressedHandler) OnClose(*Conn)              {}

// TestConnCompressed: Compressed is set for a connection the gateway may
// compress for, not for one without the extension nor for one that limited
// the server's window; the messages of both that negotiated are inflated.
func TestConnCompressed(t *testing.T) {
	h := &compressedHandler{opened: make(chan bool, 1), texts: make(chan string, 1)}
	s := startServer(t, Config{Compression: true}, h)
	for _, tc := range []struct {
		offer      string
		compressed bool
		answer     string
	}{
		{"", false, ""},
		{offerChromium, true, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10", false,
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"},
	} {
		c := dialRaw(t, s.Addr().String())
		var extra []string
		if tc.offer != "" {
			extra = append(extra, tc.offer)
		}
		if got := upgradeAnswer(t, c, "/ws", extra...); got != tc.answer {
			t.Fatalf("offer %q: answer %q, want %q", tc.offer, got, tc.answer)
		}
		if got := <-h.opened; got != tc.compressed {
			t.Fatalf("offer %q: Compressed() = %v", tc.offer, got)
		}
		if tc.answer == "" {
			continue
		}
		c.Write(withRSV1(wstest.Frame(ws.OpText, true, true, deflated(`{"op":"ping"}`))))
		select {
		case got := <-h.texts:
			if got != `{"op":"ping"}` {
				t.Fatalf("OnText %q", got)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no OnText for a compressed message")
		}
	}
}

// rss is the process's resident set in bytes (Linux).
func rss(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skip("no /proc/self/statm")
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// TestDeflateBombBounded sends frames of about 1 MiB that inflate to 1 GiB
// each, with MaxMessage 2 MiB, one connection after another: each is closed
// with 1009 within moments, and the process's memory grows by a few times
// the limit, never by what the frames inflate to.
func TestDeflateBombBounded(t *testing.T) {
	const maxMessage = 2 << 20
	s := startServer(t, Config{Echo: true, Compression: true, MaxMessage: maxMessage}, newTestHandler())
	var chunk bytes.Buffer
	w, _ := flate.NewWriter(&chunk, flate.BestCompression)
	w.Write(make([]byte, 1<<20))
	w.Flush()
	// 1024 copies of 1 MiB of zeros, each ending in a sync flush: 1 GiB.
	bomb := bytes.TrimSuffix(bytes.Repeat(chunk.Bytes(), 1024), []byte{0, 0, 0xff, 0xff})
	frame := withRSV1(wstest.Frame(ws.OpBinary, true, true, bomb))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rssBefore := rss(t)
	const bombs = 8
	start := time.Now()
	for range bombs {
		c := dialRaw(t, s.Addr().String())
		upgradeAnswer(t, c, "/echo", offerChromium)
		c.Write(frame)
		c.ExpectClose(1009, false)
		c.Conn.Close()
	}
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	grew := rss(t) - rssBefore
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d frames of %d bytes (1 GiB inflated each): closed 1009 in %v; %d KiB allocated in all (client side included), RSS %+d KiB, heap in use %d KiB",
		bombs, len(frame), took, alloc>>10, grew>>10, after.HeapInuse>>10)
	// Each bomb: the inflated buffer (under 2x the limit while doubling),
	// the frame in gnet's buffer and the test client's copy of it.
	if limit := uint64(bombs * (2*maxMessage + 4*len(frame) + 1<<20)); alloc > limit {
		t.Errorf("allocated %d bytes, bound %d", alloc, limit)
	}
	if grew > 256<<20 {
		t.Errorf("RSS grew by %d MiB", grew>>20)
	}
	if took > 10*time.Second {
		t.Errorf("took %v", took)
	}
}

// TestIdleCompressedConnMemory: a connection that negotiated compression
// and sent a compressed message costs, once idle, what a plain connection
// that sent the same message costs: it holds no inflater, no window, no
// buffer. 1,000 of each, on raw sockets (nothing on the Go heap).
func TestIdleCompressedConnMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("opens 4,000 sockets; the race detector's heap is no measure")
	}
	const n = 1000
	s := startServer(t, Config{Loops: 2, Compression: true}, nopHandler{})
	dial := rawSockets(t, s)
	buf := make([]byte, 512)
	open := func(extra ...string) int {
		fd := dial()
		unix.Write(fd, []byte(wstest.UpgradeRequest("test", "/ws", extra...)))
		got := 0
		for !bytes.HasSuffix(buf[:got], []byte("\r\n\r\n")) {
			m, err := unix.Read(fd, buf[got:])
			if err != nil || m == 0 {
				t.Fatalf("reading the 101: %v", err)
			}
			got += m
		}
		if len(extra) > 0 != bytes.Contains(buf[:got], []byte("permessage-deflate")) {
			t.Fatalf("answer %q", buf[:got])
		}
		return fd
	}
	text := strings.Repeat(`{"op":"ping","id":1}`, 50)
	plainMsg := wstest.Frame(ws.OpText, true, true, []byte(text))
	compressedMsg := withRSV1(wstest.Frame(ws.OpText, true, true, deflated(text)))
	heap := func(compressed bool) float64 {
		// Two collections empty the sync.Pools (inflaters, buffers): what
		// the loops keep for the next message is not per connection.
		var before, after runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&before)
		want := s.Conns() + n
		for range n {
			if !compressed {
				unix.Write(open(), plainMsg)
				continue
			}
			unix.Write(open(offerChromium), compressedMsg)
		}
		eventually(t, 5*time.Second, "all connections", func() bool { return s.Conns() == want })
		time.Sleep(100 * time.Millisecond) // the last messages are read
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		return (float64(after.HeapInuse) - float64(before.HeapInuse)) / n
	}
	open(offerChromium) // warm up pools and the loops' own buffers
	open()
	plain, compressed := heap(false), heap(true)
	t.Logf("idle connection after one message: %.0f bytes of heap plain, %.0f compressed (negotiated, the message deflated)", plain, compressed)
	if compressed > plain+256 {
		t.Fatalf("an idle compressed connection costs %.0f bytes, a plain one %.0f", compressed, plain)
	}
}
