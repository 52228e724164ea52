package eventloop

import (
	"bytes"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wshub/wshub/wsproto"
)

// A client that never reads is dropped as a slow consumer while a fast one
// receiving the same broadcast gets every message, in order; what the server
// holds for the slow one stays bounded by SendQueue and MaxPending.
func TestSlowConsumerDroppedFastServed(t *testing.T) {
	const (
		msgs       = 4000
		sendQueue  = 64
		maxPending = 64 << 10
		maxMessage = 4 << 10 // keeps MaxPending from being raised
	)
	reg := prometheus.NewRegistry()
	h := newTestHandler()
	s := startServer(t, Config{Loops: 1, SendQueue: sendQueue, MaxPending: maxPending, MaxMessage: maxMessage, Metrics: reg}, h)
	slow := dialSmallBuffer(t, s.Addr().String())
	slow.Upgrade("/ws")
	fast := dialWS(t, s, "/ws")
	eventually(t, 2*time.Second, "both connections open", func() bool { return h.opened.Load() == 2 })

	got := make(chan error, 1)
	go func() {
		for i := 0; i < msgs; i++ {
			f, err := fast.ReadFrame(5 * time.Second)
			if err != nil {
				got <- fmt.Errorf("fast client after %d messages: %v", i, err)
				return
			}
			if seq, _, _ := bytes.Cut(f.Payload, []byte(" ")); string(seq) != strconv.Itoa(i) {
				got <- fmt.Errorf("fast client: message %q, want sequence %d", seq, i)
				return
			}
		}
		got <- nil
	}()

	// The publisher posts each message to the loop, which sends the same
	// frame to every connection; the posted function also samples what the
	// server holds for each connection.
	var maxRing, maxOutbound int
	pad := bytes.Repeat([]byte("x"), 1000)
	loop := s.Loops()[0]
	for i := 0; i < msgs; i++ {
		f := wsproto.NewFrame(ws.OpText, append([]byte(strconv.Itoa(i)+" "), pad...))
		loop.Post(func() {
			for _, c := range h.conns(0) {
				if r := c.ring(); r != nil {
					maxRing = max(maxRing, int(r.n))
				}
				if c.state < stDead {
					maxOutbound = max(maxOutbound, c.gc.OutboundBuffered())
				}
				c.Send(f)
			}
			f.Release()
		})
		if i%50 == 49 {
			time.Sleep(time.Millisecond) // a publisher, not a flood of one batch
		}
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	slow.ExpectEOF(5 * time.Second)
	if v := metricValue(t, reg, "wshub_eventloop_slow_consumer_drops_total", nil); v != 1 {
		t.Fatalf("slow-consumer drops %v, want 1", v)
	}
	done := make(chan struct{})
	loop.Post(func() { close(done) })
	<-done
	if maxRing > sendQueue || maxOutbound > maxPending {
		t.Fatalf("held %d frames and %d outbound bytes for a connection, limits %d and %d", maxRing, maxOutbound, sendQueue, maxPending)
	}
	if v := metricValue(t, reg, "wshub_eventloop_send_queue_depth", nil); v != 0 {
		t.Fatalf("send queue depth %v after the broadcast", v)
	}
	t.Logf("max ring %d frames, max outbound %d bytes, writev calls %v for %v frames", maxRing, maxOutbound,
		metricValue(t, reg, "wshub_eventloop_writev_calls_total", nil), metricValue(t, reg, "wshub_eventloop_frames_written_total", nil))
}

// A burst larger than SendQueue in a single batch does not drop a client
// whose socket keeps up: the ring is written out when it fills.
func TestBurstLargerThanQueueInOneBatch(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, Config{Loops: 1, SendQueue: 8}, h)
	c := dialWS(t, s, "/ws")
	eventually(t, 2*time.Second, "open", func() bool { return h.opened.Load() == 1 })
	s.Loops()[0].Post(func() {
		for _, conn := range h.conns(0) {
			for i := range 100 {
				if !sendText(conn, []byte(strconv.Itoa(i))) {
					t.Errorf("send %d refused", i)
					return
				}
			}
		}
	})
	for i := range 100 {
		if f := c.NextFrame(); string(f.Payload) != strconv.Itoa(i) {
			t.Fatalf("frame %d: %q", i, f.Payload)
		}
	}
}

// A batch larger than the socket takes at once is split between the kernel
// and gnet's buffer mid-frame; the client must still read every frame whole
// and in order.
func TestPartialWritesKeepFramesIntact(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, Config{Loops: 1, SendQueue: 1024, MaxPending: 32 << 20}, h)
	c := dialSmallBuffer(t, s.Addr().String())
	c.Upgrade("/ws")
	eventually(t, 2*time.Second, "open", func() bool { return h.opened.Load() == 1 })
	const frames = 600
	pad := bytes.Repeat([]byte("y"), 16000) // 9.6 MB: more than any socket buffer
	s.Loops()[0].Post(func() {
		for _, conn := range h.conns(0) {
			for i := range frames {
				f := wsproto.NewFrame(ws.OpText, append([]byte(strconv.Itoa(i)+" "), pad...))
				if !conn.Send(f) {
					t.Errorf("send %d refused", i)
				}
				f.Release()
			}
		}
	})
	// The socket took part of the single writev; gnet holds the rest.
	l := s.Loops()[0]
	eventually(t, 2*time.Second, "the burst written", func() bool { return l.stats.framesWritten.Load() == frames })
	buffered := make(chan int, 1)
	l.Post(func() { buffered <- h.conns(0)[0].gc.OutboundBuffered() })
	if b := <-buffered; b == 0 {
		t.Fatalf("the burst fit in the socket: the partial-write path was not exercised")
	}
	if w := l.stats.writevCalls.Load(); w != 1 {
		t.Fatalf("%d writev calls for one burst", w)
	}
	for i := range frames {
		f := c.NextFrame()
		want := append([]byte(strconv.Itoa(i)+" "), pad...)
		if !bytes.Equal(f.Payload, want) {
			t.Fatalf("frame %d corrupted: %.20q... (%d bytes)", i, f.Payload, len(f.Payload))
		}
	}
}
