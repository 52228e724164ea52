package eventloop

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/klauspost/compress/flate"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wshub/wshub/wsproto"
	"github.com/wshub/wshub/wsproto/wstest"
)

// compressingHandler is a testHandler whose clients choose, with their
// first message ("z" or "p"), whether their connection counts as having
// negotiated permessage-deflate; it answers "ok". The negotiation itself is
// the handshake's business: these tests are about what is sent once it is.
func compressingHandler() *testHandler {
	h := newTestHandler()
	h.onText = func(c *Conn, msg []byte) {
		if string(msg) == "z" {
			c.flags |= fCompressed
		}
		sendText(c, []byte("ok"))
	}
	return h
}

// dialMarked upgrades a client and marks its connection compressed or not.
func dialMarked(t testing.TB, s *Server, compressed bool) *client {
	t.Helper()
	c := dialWS(t, s, "/ws")
	mark := "p"
	if compressed {
		mark = "z"
	}
	c.Write(wstest.Frame(ws.OpText, true, true, []byte(mark)))
	if f := c.NextFrame(); string(f.Payload) != "ok" || f.Header.Rsv != 0 {
		t.Fatalf("mark answered %+v %q", f.Header, f.Payload)
	}
	return c
}

// publish sends one shared frame of payload to every connection of every
// loop, as the hub does: one reference per loop, Send to each member.
func publish(s *Server, h *testHandler, payload []byte) {
	f := wsproto.NewFrame(ws.OpText, payload)
	var wg sync.WaitGroup
	for i, l := range s.Loops() {
		f.Retain()
		wg.Add(1)
		l.Post(func() {
			defer wg.Done()
			for _, c := range h.conns(i) {
				c.Send(f)
			}
			f.Release()
		})
	}
	f.Release()
	wg.Wait()
}

// inflate is what a client does with an RSV1 message (RFC 7692 §7.2.2).
func inflate(t testing.TB, payload []byte) []byte {
	t.Helper()
	tail := []byte{0x00, 0x00, 0xff, 0xff}
	out, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(payload), bytes.NewReader(tail))))
	if err != nil && err != io.ErrUnexpectedEOF {
		t.Fatalf("inflate: %v", err)
	}
	return out
}

// jsonOf is a JSON message of about n bytes that deflate shrinks.
func jsonOf(n int) []byte {
	b := []byte(`{"op":"message","channel":"feed","data":[`)
	for i := 0; len(b) < n-2; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"id":%d,"price":%d.%02d,"state":"open"}`, i, 100+i*7%13, i*37%100)
	}
	return append(b, "]}"...)
}

// Compressed and plain subscribers of one publication on both loops: the
// compressed ones get an RSV1 frame that inflates to the message, the plain
// ones the plain frame; the message is compressed once for all of them.
// Messages under CompressionMinSize go to everyone plain.
func TestCompressedAndPlainSubscribers(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := compressingHandler()
	s := startServer(t, Config{Loops: 2, Metrics: reg, CompressionMinSize: 300}, h)
	type sub struct {
		c          *client
		compressed bool
	}
	var subs []sub
	for i := 0; ; i++ {
		if i == 64 {
			t.Fatal("64 connections did not give both loops a compressed and a plain one")
		}
		sc := sub{compressed: i%2 == 0}
		sc.c = dialMarked(t, s, sc.compressed)
		subs = append(subs, sc)
		k := connKinds(s, h)
		if len(k) == 2 && k[0][0] > 0 && k[0][1] > 0 && k[1][0] > 0 && k[1][1] > 0 {
			t.Logf("[plain compressed] by loop: %v", k)
			break
		}
	}

	big := jsonOf(2000)
	publish(s, h, big)
	var nz int
	var zlen int
	for i, sc := range subs {
		f := sc.c.NextFrame()
		switch {
		case f.Header.OpCode != ws.OpText || !f.Header.Fin:
			t.Fatalf("subscriber %d: %+v", i, f.Header)
		case sc.compressed:
			if f.Header.Rsv != ws.Rsv(true, false, false) {
				t.Fatalf("compressed subscriber %d got RSV %03b", i, f.Header.Rsv)
			}
			if got := inflate(t, f.Payload); !bytes.Equal(got, big) {
				t.Fatalf("compressed subscriber %d: inflated to %d bytes, not the %d-byte message", i, len(got), len(big))
			}
			nz++
			zlen = len(f.Payload)
		default:
			if f.Header.Rsv != 0 || !bytes.Equal(f.Payload, big) {
				t.Fatalf("plain subscriber %d got RSV %03b, %d bytes", i, f.Header.Rsv, len(f.Payload))
			}
		}
	}
	if zlen >= len(big)/2 {
		t.Errorf("%d bytes compressed to %d", len(big), zlen)
	}
	want := map[string]float64{
		"wshub_eventloop_compressions_total":            1,
		"wshub_eventloop_frames_compressed_total":       float64(nz),
		"wshub_eventloop_compression_saved_bytes_total": float64(nz * (len(big) - zlen)), // same header length
		"wshub_eventloop_compression_input_bytes_total": float64(len(big)),
	}
	for name, v := range want {
		if got := metricValue(t, reg, name, nil); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	if got := metricValue(t, reg, "wshub_eventloop_compression_seconds_total", nil); got <= 0 {
		t.Errorf("compression_seconds_total = %v", got)
	}

	small := jsonOf(240)
	if len(small) >= 300 {
		t.Fatalf("the small message has %d bytes", len(small))
	}
	publish(s, h, small)
	for i, sc := range subs {
		if f := sc.c.NextFrame(); f.Header.Rsv != 0 || !bytes.Equal(f.Payload, small) {
			t.Fatalf("subscriber %d: a message under the minimum came with RSV %03b, %d bytes", i, f.Header.Rsv, len(f.Payload))
		}
	}
	if got := metricValue(t, reg, "wshub_eventloop_compressions_total", nil); got != 1 {
		t.Errorf("a message under the minimum was compressed: compressions_total = %v", got)
	}
}

// connKinds counts each loop's open connections: [plain, compressed].
func connKinds(s *Server, h *testHandler) map[int][2]int {
	m := map[int][2]int{}
	for i, l := range s.Loops() {
		if !l.bound() {
			continue // a post would wait for its first connection
		}
		done := make(chan [2]int)
		l.Post(func() {
			var k [2]int
			for _, c := range h.conns(i) {
				if c.Compressed() {
					k[1]++
				} else {
					k[0]++
				}
			}
			done <- k
		})
		if k := <-done; k != [2]int{} {
			m[i] = k
		}
	}
	return m
}

// Many publications, each to compressed subscribers on both loops: each is
// compressed exactly once, whichever loop gets to it first.
func TestCompressedOncePerPublication(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := compressingHandler()
	s := startServer(t, Config{Loops: 2, Metrics: reg}, h)
	var cs []*client
	for len(connKinds(s, h)) < 2 || len(cs) < 6 {
		if len(cs) == 64 {
			t.Fatal("every connection landed on one loop")
		}
		cs = append(cs, dialMarked(t, s, true))
	}
	const msgs = 200
	done := make(chan error, len(cs))
	for _, c := range cs {
		go func() {
			for i := range msgs {
				f, err := c.ReadFrame(wstest.Timeout)
				if err == nil && (f.Header.Rsv == 0 || len(inflate(t, f.Payload)) != len(jsonOf(1000+i))) {
					err = fmt.Errorf("message %d: RSV %03b", i, f.Header.Rsv)
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for i := range msgs {
		publish(s, h, jsonOf(1000+i))
	}
	for range cs {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got := metricValue(t, reg, "wshub_eventloop_compressions_total", nil); got != msgs {
		t.Fatalf("%v compressions for %d publications to %d subscribers", got, msgs, len(cs))
	}
	if got := metricValue(t, reg, "wshub_eventloop_frames_compressed_total", nil); got != float64(msgs*len(cs)) {
		t.Fatalf("%v compressed frames written, want %d", got, msgs*len(cs))
	}
}

// Steady-state fan-out to compressed subscribers allocates nothing per
// delivery: a publication costs its frame (one struct; the buffers and the
// compressor are pooled), whatever the number of subscribers.
func TestCompressedFanOutAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	const conns, pubs = 50, 400
	h := compressingHandler()
	s := startServer(t, Config{Loops: 1, SendQueue: 4096, MaxPending: 64 << 20}, h)
	for i := range conns {
		c := dialMarked(t, s, i%5 != 0)  // four in five compressed
		go io.Copy(io.Discard, c.Reader) //nolint:errcheck // drains until the connection closes
	}
	l := s.Loops()[0]
	msg := jsonOf(1000)
	publishOnLoop(l, h, msg, pubs) // warm the pools, the rings and the compressor
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	publishOnLoop(l, h, msg, pubs)
	runtime.ReadMemStats(&after)
	perPub := float64(after.Mallocs-before.Mallocs) / pubs
	t.Logf("%.2f allocations per publication to %d subscribers (%d compressed)", perPub, conns, conns*4/5)
	if perPub > 1.5 {
		t.Fatalf("%.2f allocations per publication, want the frame's 1", perPub)
	}
	if d := l.stats.slowDrops.Load(); d != 0 {
		t.Fatalf("%d slow-consumer drops", d)
	}
}

// publishOnLoop sends n publications of msg to every connection of loop 0
// of h, from l's goroutine, a flush after each, and waits until done.
func publishOnLoop(l *Loop, h *testHandler, msg []byte, n int) {
	done := make(chan struct{})
	l.Post(func() {
		cs := h.conns(0)
		for range n {
			f := wsproto.NewFrame(ws.OpText, msg)
			for _, c := range cs {
				c.Send(f)
			}
			f.Release()
			l.flushDirty()
		}
		close(done)
	})
	<-done
}

// BenchmarkFanOutCompressed is BenchmarkFanOut with every connection
// compressed and a new 1 KB JSON publication per flush: ns/delivery against
// the plain run is what compression adds per delivery, compressing
// included (once per publication).
func BenchmarkFanOutCompressed(b *testing.B) {
	for _, compressed := range []bool{false, true} {
		b.Run(fmt.Sprintf("conns=100/compressed=%v", compressed), func(b *testing.B) {
			const n = 100
			h := compressingHandler()
			s := startServer(b, Config{Loops: 1, SendQueue: 4096, MaxPending: 64 << 20}, h)
			for range n {
				c := dialMarked(b, s, compressed)
				go io.Copy(io.Discard, c.Reader) //nolint:errcheck // drains until the connection closes
			}
			l := s.Loops()[0]
			msg := jsonOf(1000)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			publishOnLoop(l, h, msg, b.N)
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N*n), "ns/delivery")
		})
	}
}
