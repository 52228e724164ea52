package eventloop

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"

	"github.com/wshub/wshub/wsproto/wstest"
)

// writes reads the loop's write counters (frames, writes).
func writes(l *Loop) (frames, calls uint64) {
	return l.stats.framesWritten.Load(), l.stats.writevCalls.Load()
}

// Every ping of a read gets its own pong, with its payload, in the order of
// the pings (Autobahn 2.10, 2.11; a client that matches pongs to pings must
// see each), and the pongs leave in the same writev as the reply the read
// queued, ahead of it.
func TestPingsAnsweredInOrder(t *testing.T) {
	s := startServer(t, Config{Loops: 1, PingInterval: -1}, newTestHandler())
	c := dialWS(t, s, "/ws")
	l := s.Loops()[0]
	frames0, calls0 := writes(l)
	var in []byte
	for i := range 10 {
		in = append(in, wstest.Frame(ws.OpPing, true, true, fmt.Appendf(nil, "ping %d", i))...)
	}
	in = append(in, wstest.Frame(ws.OpText, true, true, []byte("after"))...)
	c.Write(in) // one segment: one read on loopback

	for i := range 10 {
		f, err := c.ReadFrame(5 * time.Second)
		if err != nil {
			t.Fatalf("pong %d: %v", i, err)
		}
		if want := fmt.Sprintf("ping %d", i); f.Header.OpCode != ws.OpPong || string(f.Payload) != want {
			t.Fatalf("frame %d: %v %q, want the pong %q", i, f.Header.OpCode, f.Payload, want)
		}
	}
	if f := c.NextFrame(); f.Header.OpCode != ws.OpText || string(f.Payload) != "after" {
		t.Fatalf("frame %v %q, want the text reply", f.Header.OpCode, f.Payload)
	}
	eventually(t, 2*time.Second, "the write to be counted", func() bool {
		f, _ := writes(l)
		return f-frames0 >= 11
	})
	frames, calls := writes(l)
	if frames-frames0 != 11 || calls-calls0 != 1 {
		t.Fatalf("%d frames in %d writes, want the 10 pongs and the reply in 1", frames-frames0, calls-calls0)
	}
}

// A ping flood packed into one write costs the gateway a bounded buffer and
// about one write per read: each read answers at most MaxPongsPerRead pings
// one by one, the last pong of a read carries its latest ping, and the
// message that follows the flood is still answered.
func TestPingFloodBounded(t *testing.T) {
	const pings = 100_000
	const maxPongs = DefaultMaxPongsPerRead
	s := startServer(t, Config{Loops: 1, PingInterval: -1}, newTestHandler())
	c := dialWS(t, s, "/ws")
	l := s.Loops()[0]
	pongCap := func() int { // the loop's pong buffer, read on the loop
		got := make(chan int, 1)
		l.Post(func() { got <- cap(l.pongs) })
		return <-got
	}
	bufCap := pongCap()
	frames0, calls0 := writes(l)
	drops0 := l.stats.slowDrops.Load()
	var in []byte
	for i := range pings {
		in = append(in, wstest.Frame(ws.OpPing, true, true, fmt.Appendf(nil, "p%06d", i))...)
	}
	in = append(in, wstest.Frame(ws.OpText, true, true, []byte("after"))...)
	wrote := make(chan error, 1)
	go func() { // 1.4 MB: read the pongs meanwhile
		c.Conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := c.Conn.Write(in)
		wrote <- err
	}()

	pongs, last, prev := 0, "", -1
	for {
		f, err := c.ReadFrame(10 * time.Second)
		if err != nil {
			t.Fatalf("after %d pongs: %v", pongs, err)
		}
		if f.Header.OpCode == ws.OpPong {
			pongs++
			last = string(f.Payload)
			var n int
			if _, err := fmt.Sscanf(last, "p%06d", &n); err != nil || n <= prev {
				t.Fatalf("pong %d carries %q after ping %d: want increasing ping numbers", pongs, last, prev)
			}
			prev = n
			continue
		}
		if f.Header.OpCode != ws.OpText || string(f.Payload) != "after" {
			t.Fatalf("frame %v %q, want the text reply", f.Header.OpCode, f.Payload)
		}
		break
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("p%06d", pings-1); last != want {
		t.Fatalf("last pong carries %q, want the last ping's %q", last, want)
	}
	eventually(t, 2*time.Second, "the writes to be counted", func() bool {
		f, _ := writes(l)
		return f-frames0 >= uint64(pongs+1)
	})
	frames, calls := writes(l)
	frames, calls = frames-frames0, calls-calls0
	t.Logf("%d pings: %d pongs in %d writes", pings, pongs, calls)
	switch {
	case frames != uint64(pongs+1):
		t.Fatalf("%d frames written, want the %d pongs and the reply", frames, pongs)
	case calls > frames/8 || calls > pings/maxPongs:
		// A read holds about 64 KiB: some 5,000 pings.
		t.Fatalf("%d writes for %d frames: pongs are not batched", calls, frames)
	case uint64(pongs) > maxPongs*calls:
		t.Fatalf("%d pongs in %d writes: more than %d a read", pongs, calls, maxPongs)
	case pongCap() != bufCap:
		t.Fatalf("the loop's pong buffer grew from %d bytes", bufCap)
	case l.stats.slowDrops.Load() != drops0:
		t.Fatal("the flooding client was dropped as a slow consumer")
	}
}

// discardConn is a gnet.Conn whose socket takes everything at once.
type discardConn struct {
	gnet.Conn
	written int
}

func (d *discardConn) Write(b []byte) (int, error) { d.written += len(b); return len(b), nil }
func (d *discardConn) OutboundBuffered() int       { return 0 }

// Past MaxPongsPerRead pings in a read, the last pong answers the latest;
// answering costs no allocation however many pings come.
func TestPongsPerReadCap(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Logger: quietLogger(), MaxPongsPerRead: 4}, newTestHandler())
	if err != nil {
		t.Fatal(err)
	}
	l := s.loops[0]
	for i := range 10 {
		l.queuePong(fmt.Appendf(nil, "%d", i))
	}
	var got []string
	for r := bytes.NewReader(l.pongs); r.Len() > 0; {
		f, err := wstest.ReadFrame(r)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(f.Payload))
	}
	if fmt.Sprint(got) != "[0 1 2 9]" {
		t.Fatalf("pongs %v for pings 0-9 with a cap of 4, want [0 1 2 9]", got)
	}

	dc := &discardConn{}
	c := &Conn{gc: dc, loop: l, state: stOpen}
	l.answerPings(c)
	before := dc.written
	payload := []byte("keepalive")
	allocs := testing.AllocsPerRun(100, func() {
		for range 1000 {
			l.queuePong(payload)
		}
		l.answerPings(c)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per read of 1000 pings, want 0", allocs)
	}
	// AllocsPerRun runs the function once more to warm up.
	if got, want := dc.written-before, 101*4*(2+len(payload)); got != want {
		t.Fatalf("%d bytes written for 101 reads of 1000 pings, want %d (4 pongs each)", got, want)
	}
}

func TestMaxPongsPerReadConfig(t *testing.T) {
	c, err := Config{Addr: ":0"}.withDefaults()
	if err != nil || c.MaxPongsPerRead != DefaultMaxPongsPerRead {
		t.Fatalf("default MaxPongsPerRead %d, %v; want %d", c.MaxPongsPerRead, err, DefaultMaxPongsPerRead)
	}
	for _, n := range []int{-1, MaxPongsPerReadCeiling + 1} {
		if _, err := (Config{Addr: ":0", MaxPongsPerRead: n}).withDefaults(); err == nil {
			t.Errorf("MaxPongsPerRead %d accepted", n)
		}
	}
}
