package eventloop

import (
	"bufio"
	"bytes"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"

	"github.com/wshub/wshub/wsproto/wstest"
)

// recordingConn is a gnet.Conn whose socket takes nothing: what is written
// stays "buffered", so OutboundBuffered grows with every write. Only the
// methods the send path uses are implemented.
type recordingConn struct {
	gnet.Conn
	out    bytes.Buffer
	closed bool
}

func (r *recordingConn) Write(b []byte) (int, error) { return r.out.Write(b) }
func (r *recordingConn) Writev(bs [][]byte) (int, error) {
	n := 0
	for _, b := range bs {
		n += len(b)
		r.out.Write(b)
	}
	return n, nil
}
func (r *recordingConn) OutboundBuffered() int { return r.out.Len() }
func (r *recordingConn) Close() error          { r.closed = true; return nil }

// A connection dropped as a slow consumer after our close frame went out
// gets no second close frame (RFC 6455 §5.5.1), only the socket close.
func TestSlowDropAfterCloseSentWritesNoSecondClose(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Logger: quietLogger()}, newTestHandler())
	if err != nil {
		t.Fatal(err)
	}
	l := s.loops[0]
	// As if gnet's buffer were past the limit once the close frame is in it.
	l.maxPending = 1
	rc := &recordingConn{}
	c := &Conn{gc: rc, loop: l, state: stOpen}
	c.Close(1000, "bye")
	l.enter()
	l.leave()
	if c.state != stDead || !rc.closed {
		t.Fatalf("state %v, socket closed %v: want a slow-consumer drop", c.state, rc.closed)
	}
	var codes []uint16
	rd := bufio.NewReader(&rc.out)
	for rd.Buffered() > 0 || rc.out.Len() > 0 {
		f, err := wstest.ReadFrame(rd)
		if err != nil {
			t.Fatalf("reading what was written: %v", err)
		}
		if f.Header.OpCode == ws.OpClose {
			codes = append(codes, uint16(f.Payload[0])<<8|uint16(f.Payload[1]))
		}
	}
	if len(codes) != 1 || codes[0] != 1000 {
		t.Fatalf("close frames written: %v, want only our 1000", codes)
	}
}

// MaxPending is raised to hold the largest frame the server sends, so one
// MaxMessage-sized frame cannot by itself drop a client that reads.
func TestMaxPendingHoldsALargestFrame(t *testing.T) {
	cfg, err := Config{Addr: "x", MaxMessage: 4 << 20, MaxPending: 4096}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxPending < cfg.MaxMessage+maxServerHeader {
		t.Fatalf("MaxPending %d under one %d-byte message's frame", cfg.MaxPending, cfg.MaxMessage)
	}

	h := newTestHandler()
	s := startServer(t, Config{Loops: 1, MaxMessage: 4 << 20, MaxPending: 4096}, h)
	c := dialSmallBuffer(t, s.Addr().String()) // reads, but the kernel holds little
	c.Upgrade("/ws")
	eventually(t, 2*time.Second, "open", func() bool { return h.opened.Load() == 1 })
	big := bytes.Repeat([]byte("z"), 4<<20) // more than the socket takes at once (~2 MB here)
	s.Loops()[0].Post(func() {
		for _, conn := range h.conns(0) {
			sendText(conn, big)
		}
	})
	if f := c.NextFrame(); f.Header.OpCode != ws.OpText || !bytes.Equal(f.Payload, big) {
		t.Fatalf("got %v with %d bytes, want the 4 MiB text", f.Header.OpCode, len(f.Payload))
	}
}
