package eventloop

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/wshub/wshub/wsproto/wstest"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/wshub/wshub/wsproto"
)

// BenchmarkFanOut sends one shared frame to every connection of a loop via
// Send, flushing after every `frames` frames (one writev per connection per
// flush); clients drain on their own goroutines. ns/delivery is the loop's
// cost per frame per connection.
func BenchmarkFanOut(b *testing.B) {
	for _, tc := range []struct{ conns, frames int }{{100, 1}, {100, 16}} {
		b.Run(fmt.Sprintf("conns=%d/frames_per_flush=%d", tc.conns, tc.frames), func(b *testing.B) {
			benchFanOut(b, tc.conns, tc.frames)
		})
	}
}

func benchFanOut(b *testing.B, n, perFlush int) {
	h := newTestHandler()
	s := startServer(b, Config{Loops: 1, SendQueue: 4096, MaxPending: 64 << 20}, h)
	for range n {
		c := dialWS(b, s, "/ws")
		go io.Copy(io.Discard, c.Reader) //nolint:errcheck // drains until the connection closes
	}
	eventually(b, 5*time.Second, "all open", func() bool { return h.opened.Load() == int64(n) })
	l := s.Loops()[0]
	f := wsproto.NewFrame(ws.OpText, bytes.Repeat([]byte("x"), 64))
	defer f.Release()
	conns := make(chan []*Conn, 1)
	l.Post(func() { conns <- h.conns(0) })
	cs := <-conns
	slowBefore := l.stats.slowDrops.Load()
	writevBefore := l.stats.writevCalls.Load()

	done := make(chan struct{})
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	l.Post(func() {
		for i := 0; i < b.N; {
			for j := 0; j < perFlush && i < b.N; j++ {
				for _, c := range cs {
					c.Send(f)
				}
				i++
			}
			l.flushDirty()
		}
		close(done)
	})
	<-done
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N*n), "ns/delivery")
	b.ReportMetric(float64(b.N*n)/float64(l.stats.writevCalls.Load()-writevBefore), "frames/writev")
	if d := l.stats.slowDrops.Load() - slowBefore; d > 0 {
		b.Fatalf("%d connections dropped as slow during the benchmark", d)
	}
}

// nopHandler keeps nothing, so the heap measured is the server's own.
type nopHandler struct{}

func (nopHandler) OnOpen(*Conn)         {}
func (nopHandler) OnText(*Conn, []byte) {}
func (nopHandler) OnClose(*Conn)        {}

// TestIdleConnMemory opens 2,000 upgraded connections that then sit idle
// and reports the server's heap per connection (gnet's conn, ours, their
// bookkeeping). The clients are raw blocking sockets, so they add nothing
// to the Go heap.
func TestIdleConnMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 4,000 sockets")
	}
	const n = 2000
	s := startServer(t, Config{Loops: 2}, nopHandler{})
	dial := rawSockets(t, s)
	upgrade := func(fd int, buf []byte) {
		if _, err := unix.Write(fd, []byte(wstest.UpgradeRequest("test", "/ws?token=abc"))); err != nil {
			t.Fatal(err)
		}
		got := 0
		for !bytes.HasSuffix(buf[:got], []byte("\r\n\r\n")) {
			m, err := unix.Read(fd, buf[got:])
			if err != nil || m == 0 {
				t.Fatalf("reading the 101: %v", err)
			}
			got += m
		}
		if !bytes.HasPrefix(buf, []byte("HTTP/1.1 101")) {
			t.Fatalf("upgrade: %q", buf[:got])
		}
	}
	buf := make([]byte, 512)
	upgrade(dial(), buf) // warm up pools and the loops' own buffers
	upgrade(dial(), buf)
	eventually(t, 2*time.Second, "warm-up", func() bool { return s.Conns() == 2 })

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		upgrade(dial(), buf)
	}
	eventually(t, 5*time.Second, "all connections", func() bool { return s.Conns() == n+2 })
	runtime.GC()
	runtime.ReadMemStats(&after)
	perConn := (float64(after.HeapInuse) - float64(before.HeapInuse)) / n

	gnetSize := make(chan uintptr, 1)
	s.Loops()[0].Post(func() {
		c := s.loops[0].conns[0]
		gnetSize <- reflect.TypeOf(c.gc).Elem().Size()
	})
	t.Logf("idle upgraded connection: %.0f bytes of heap (HeapInuse delta over %d); struct sizes: Conn %d B, gnet conn %d B",
		perConn, n, unsafe.Sizeof(Conn{}), <-gnetSize)
	if perConn > 2048 {
		t.Fatalf("%.0f bytes of heap per idle connection", perConn)
	}
}
