package wsproto

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"

	"github.com/wshub/wshub/wsproto/wstest"
)

// serveOne plays the server side of one connection with this package only:
// parse the handshake from whatever the socket delivers, then decode frames,
// echoing data messages with NewFrame and answering a close with a close.
// It returns the decoded events, and the first failure (it runs on its own
// goroutine, so it must not call t's methods).
func serveOne(conn net.Conn, cfg *HandshakeConfig) ([]rec, error) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var buf []byte
	tmp := make([]byte, 512)
	var hs Handshake
	for hs.Status == HandshakeNeedMore {
		n, err := conn.Read(tmp)
		if err != nil {
			return nil, fmt.Errorf("server read during handshake: %w", err)
		}
		buf = append(buf, tmp[:n]...)
		hs = ParseHandshake(buf, cfg)
	}
	if _, err := conn.Write(hs.Response); err != nil || hs.Status != HandshakeDone {
		return nil, fmt.Errorf("handshake %+v, write err %v", hs, err)
	}
	buf = append(buf[:0], buf[hs.Consumed:]...)
	var d Decoder
	d.Init(1 << 20)
	defer d.Reset()
	var events []rec
	for {
		ev, n, err := d.Next(buf)
		if err != nil {
			return events, fmt.Errorf("decode: %w", err)
		}
		if n == 0 {
			m, err := conn.Read(tmp)
			if err != nil {
				return events, fmt.Errorf("server read: %w", err)
			}
			buf = append(buf, tmp[:m]...)
			continue
		}
		if ev.Kind != EventNone {
			events = append(events, rec{ev.Kind, string(ev.Payload), ev.CloseCode, string(ev.CloseReason), false})
		}
		switch ev.Kind {
		case EventText, EventBinary:
			f := NewFrame(ws.OpCode(ev.Kind), ev.Payload) // EventText==1==OpText, EventBinary==2==OpBinary
			_, err = conn.Write(f.Bytes())
			f.Release()
		case EventPing:
			_, err = conn.Write(AppendFrame(nil, ws.OpPong, ev.Payload))
		case EventClose:
			f := NewCloseFrame(ev.CloseCode, string(ev.CloseReason))
			_, err = conn.Write(f.Bytes())
			f.Release()
			return events, err
		}
		if err != nil {
			return events, fmt.Errorf("server write: %w", err)
		}
		buf = append(buf[:0], buf[n:]...)
	}
}

// startServer runs serveOne on srv; the returned func waits for it and fails
// the test on a server error. On an early test failure, closing cli ends it.
func startServer(t *testing.T, srv, cli net.Conn) (wait func() []rec) {
	type result struct {
		events []rec
		err    error
	}
	done := make(chan result, 1)
	go func() {
		ev, err := serveOne(srv, &HandshakeConfig{Paths: []string{"/ws"}})
		done <- result{ev, err}
	}()
	t.Cleanup(func() { cli.Close(); <-done })
	var res *result
	return func() []rec {
		if res == nil {
			r := <-done
			done <- r // for the cleanup
			res = &r
		}
		if res.err != nil {
			t.Fatalf("server: %v", res.err)
		}
		return res.events
	}
}

// TestGobwasClient runs a gobwas/ws client against serveOne over a pipe: the
// handshake must satisfy gobwas's checks (accept key, subprotocol), frames it
// masks and fragments must decode to its payloads, and our frames must read
// back through gobwas as the same payloads.
func TestGobwasClient(t *testing.T) {
	srv, cli := net.Pipe()
	wait := startServer(t, srv, cli)
	cli.SetDeadline(time.Now().Add(10 * time.Second))

	u, _ := url.Parse("ws://example.com/ws?token=abc")
	br, hs, err := ws.Dialer{Protocols: []string{"other", Subprotocol}}.Upgrade(cli, u)
	if err != nil {
		t.Fatalf("gobwas refused our handshake: %v", err)
	}
	if hs.Protocol != Subprotocol {
		t.Fatalf("negotiated %q", hs.Protocol)
	}
	var r io.Reader = cli
	if br != nil {
		r = io.MultiReader(br, cli)
	}
	// send masks f and writes it in one call: on a synchronous pipe, a
	// zero-length payload write would block until the server reads again.
	send := func(f ws.Frame) {
		var b bytes.Buffer
		ws.WriteFrame(&b, ws.MaskFrame(f))
		if _, err := cli.Write(b.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	var want []rec
	for _, size := range []int{0, 1, 125, 126, 4096, 65535, 65536, 70000} {
		p := make([]byte, size)
		for i := range p {
			p[i] = byte('a' + rnd.IntN(26))
		}
		op := ws.OpText
		if size%2 == 1 {
			op = ws.OpBinary
		}
		send(ws.NewFrame(op, true, p))
		want = append(want, rec{Kind: EventKind(op), Payload: string(p)})
		got, err := wstest.ReadFrame(r)
		if err != nil || got.Header.OpCode != op || !got.Header.Fin || got.Header.Masked || !bytes.Equal(got.Payload, p) {
			t.Fatalf("echo of %d bytes: header %+v err %v", size, got.Header, err)
		}
	}
	// A fragmented text message with a code point split across fragments and
	// a ping in the middle.
	parts := [][]byte{[]byte("héllo "), []byte("w\xe2\x82"), []byte("\xac!")}
	// (net.Pipe is synchronous: read the pong before writing on.)
	send(ws.NewFrame(ws.OpText, false, parts[0]))
	send(ws.NewPingFrame([]byte("ping!")))
	if f, err := wstest.ReadFrame(r); err != nil || f.Header.OpCode != ws.OpPong || string(f.Payload) != "ping!" {
		t.Fatalf("pong: %+v %q %v", f.Header, f.Payload, err)
	}
	send(ws.NewFrame(ws.OpContinuation, false, parts[1]))
	send(ws.NewFrame(ws.OpContinuation, true, parts[2]))
	want = append(want, rec{Kind: EventPing, Payload: "ping!"}, rec{Kind: EventText, Payload: "héllo w€!"})
	if f, err := wstest.ReadFrame(r); err != nil || string(f.Payload) != "héllo w€!" {
		t.Fatalf("echo of fragmented message: %q %v", f.Payload, err)
	}
	body := ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")
	send(ws.NewCloseFrame(body))
	want = append(want, rec{Kind: EventClose, Payload: string(body), Code: 1000, Reason: "bye"})
	f, err := wstest.ReadFrame(r)
	if code, reason := ws.ParseCloseFrameData(f.Payload); err != nil || f.Header.OpCode != ws.OpClose || code != 1000 || reason != "bye" {
		t.Fatalf("close reply: %+v code %d reason %q err %v", f.Header, code, reason, err)
	}
	got := wait()
	if !bytesEqualRecs(got, want) {
		t.Fatalf("server decoded\n%v\nwant\n%v", got, want)
	}
}

func bytesEqualRecs(a, b []rec) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestGorillaClient checks the handshake and framing against a second,
// independent client implementation.
func TestGorillaClient(t *testing.T) {
	srv, cli := net.Pipe()
	wait := startServer(t, srv, cli)
	dialer := websocket.Dialer{
		NetDialContext: func(context.Context, string, string) (net.Conn, error) { return cli, nil },
		Subprotocols:   []string{Subprotocol},
	}
	c, resp, err := dialer.Dial("ws://example.com/ws", nil)
	if err != nil {
		t.Fatalf("gorilla refused our handshake: %v", err)
	}
	defer c.Close()
	if c.Subprotocol() != Subprotocol || resp.StatusCode != 101 {
		t.Fatalf("subprotocol %q status %d", c.Subprotocol(), resp.StatusCode)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, msg := range []string{"hello", "", string(bytes.Repeat([]byte("ü"), 40000))} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		typ, got, err := c.ReadMessage()
		if err != nil || typ != websocket.TextMessage || string(got) != msg {
			t.Fatalf("echo: type %d len %d err %v", typ, len(got), err)
		}
	}
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "done"))
	if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, 4001) {
		t.Fatalf("want our close 4001 back, got %v", err)
	}
	if got := wait(); len(got) != 4 || got[3].Code != 4001 {
		t.Fatalf("server decoded %v", got)
	}
}

// TestDecoderMatchesGobwasReader writes a random frame stream with gobwas,
// then decodes it both with gobwas's own reader and with Decoder fed in random
// chunks: both must see the same payloads, in order.
func TestDecoderMatchesGobwasReader(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	var stream bytes.Buffer
	for i := 0; i < 200; i++ {
		var f ws.Frame
		switch k := rnd.IntN(10); {
		case k < 2:
			f = ws.NewPingFrame(randASCII(rnd, rnd.IntN(126)))
		case k < 3:
			f = ws.NewPongFrame(randASCII(rnd, rnd.IntN(126)))
		default:
			size := []int{0, 5, 125, 126, 127, 300, 65535, 65536}[rnd.IntN(8)]
			f = ws.NewBinaryFrame(randASCII(rnd, size))
		}
		if err := ws.WriteFrame(&stream, ws.MaskFrame(f)); err != nil {
			t.Fatal(err)
		}
	}
	var want []rec
	r := bytes.NewReader(stream.Bytes())
	for r.Len() > 0 {
		f, err := wstest.ReadFrame(r)
		if err != nil {
			t.Fatal(err)
		}
		f = ws.UnmaskFrameInPlace(f)
		want = append(want, rec{Kind: map[ws.OpCode]EventKind{ws.OpBinary: EventBinary, ws.OpPing: EventPing, ws.OpPong: EventPong}[f.Header.OpCode], Payload: string(f.Payload)})
	}
	for s := uint64(0); s < 3; s++ {
		got := decode(stream.Bytes(), 1<<20, false, randomChunks(s), t.Errorf)
		if got.errCode != 0 || got.leftover != 0 || !bytesEqualRecs(got.events, want) {
			t.Fatalf("seed %d: err %d leftover %d, %d events vs gobwas %d", s, got.errCode, got.leftover, len(got.events), len(want))
		}
	}
}

func randASCII(r *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(' ' + r.IntN(95))
	}
	return p
}
