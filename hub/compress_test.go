package hub

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/gobwas/ws"
	"github.com/klauspost/compress/flate"

	"github.com/wshub/wshub/wsproto"
)

// deflatingConn is a subscriber that negotiated permessage-deflate, seen
// from the hub: it takes the compressed bytes of every frame it is sent, as
// the event loop does when it writes to such a connection, with its loop's
// Deflater (one per loop, shared by the loop's connections).
type deflatingConn struct {
	*fakeConn
	d     *wsproto.Deflater
	keep  bool // keep the compressed frames (else only count them)
	mu    sync.Mutex
	wires [][]byte
	plain int // frames that went out plain all the same
}

func (c *deflatingConn) Send(f *wsproto.Frame) bool {
	c.n.Add(1)
	z := f.Deflated(c.d, 256)
	c.mu.Lock()
	switch {
	case z == nil:
		c.plain++
	case c.keep:
		c.wires = append(c.wires, bytes.Clone(z))
	}
	c.mu.Unlock()
	return true
}

// inflatePayload undoes what a compressed frame holds (RFC 7692 §7.2.2).
func inflatePayload(t testing.TB, wire []byte) []byte {
	t.Helper()
	if wire[0] != 0x80|0x40|byte(ws.OpText) {
		t.Fatalf("first byte %08b, want FIN, RSV1, text", wire[0])
	}
	out, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(framePayload(wire)), bytes.NewReader([]byte{0, 0, 0xff, 0xff}))))
	if err != nil && err != io.ErrUnexpectedEOF {
		t.Fatal(err)
	}
	return out
}

// quotes is a publication's data of about n bytes of JSON.
func quotes(i, n int) []byte {
	b := fmt.Appendf(nil, `{"seq":%d,"rows":[`, i)
	for j := 0; len(b) < n; j++ {
		b = fmt.Appendf(b, `{"sym":"S%d","bid":%d.%02d,"ask":%d.%02d},`, j%17, 100+j%9, j*7%100, 101+j%9, j*3%100)
	}
	b[len(b)-1] = ']'
	return append(b, '}')
}

// Compressed and plain subscribers of one channel on four real loop
// goroutines: each publication is compressed once in all, the compressed
// subscribers get the very same bytes, which inflate to the message the
// plain subscribers get; a small publication goes out plain to everyone.
func TestFanoutCompressedOnceAcrossLoops(t *testing.T) {
	const nloops, zPerLoop, plainPerLoop, pubs = 4, 3, 2, 50
	h, loops := goHub(t, NewMemoryBroker(), nloops)
	deflaters := make([]*wsproto.Deflater, nloops)
	var zs []*deflatingConn
	var plains []*fakeConn
	for li, l := range loops {
		deflaters[li] = wsproto.NewDeflater(wsproto.DefaultDeflateLevel)
		for i := 0; i < zPerLoop+plainPerLoop; i++ {
			fc := &fakeConn{id: uint64(li*100 + i), loop: li}
			var c Conn = fc
			if i < zPerLoop {
				z := &deflatingConn{fakeConn: fc, d: deflaters[li], keep: true}
				zs = append(zs, z)
				c = z
			} else {
				plains = append(plains, fc)
			}
			l.do(func() {
				h.OnOpen(c)
				h.OnText(c, []byte(`{"op":"subscribe","channel":"feed"}`))
			})
		}
	}
	syncAll(loops)

	for i := range pubs {
		h.Deliver("feed", quotes(i, 1500))
	}
	h.Deliver("feed", []byte(`{"tiny":true}`))
	syncAll(loops)

	var compressions uint64
	for _, d := range deflaters {
		compressions += d.Stats().Messages.Load()
	}
	if compressions != pubs {
		t.Fatalf("%d compressions for %d publications to %d compressed subscribers on %d loops", compressions, pubs, len(zs), nloops)
	}
	for _, c := range plains {
		got := c.take()
		if len(got) != pubs+1 {
			t.Fatalf("plain subscriber got %d messages", len(got))
		}
		for i, m := range got[:pubs] {
			if want := `{"op":"message","channel":"feed","data":` + string(quotes(i, 1500)) + `}`; m != want {
				t.Fatalf("plain subscriber, message %d: %.60q", i, m)
			}
		}
	}
	for _, z := range zs {
		if len(z.wires) != pubs || z.plain != 1 {
			t.Fatalf("compressed subscriber: %d compressed, %d plain; want %d and 1 (the tiny one)", len(z.wires), z.plain, pubs)
		}
		for i, w := range z.wires {
			if !bytes.Equal(w, zs[0].wires[i]) {
				t.Fatalf("message %d: compressed subscribers got different bytes", i)
			}
			if want := `{"op":"message","channel":"feed","data":` + string(quotes(i, 1500)) + `}`; string(inflatePayload(t, w)) != want {
				t.Fatalf("message %d does not inflate to the publication", i)
			}
		}
	}
}

// Steady-state fan-out to compressed subscribers allocates nothing in the
// hub or per delivery: per Deliver, at most what wsproto spends on the
// frame itself; the compression (once per Deliver) allocates nothing warm.
func TestFanoutCompressedAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	const nloops, subs, batch = 4, 1000, 200
	h, loops := testHub(t, NewMemoryBroker(), nloops, Config{})
	deflaters := make([]*wsproto.Deflater, nloops)
	for i := range deflaters {
		deflaters[i] = wsproto.NewDeflater(wsproto.DefaultDeflateLevel)
	}
	var zs []*deflatingConn
	for i := 0; i < subs; i++ {
		fc := &fakeConn{id: uint64(i), loop: i % nloops, count: true}
		var c Conn = fc
		if i%2 == 0 {
			z := &deflatingConn{fakeConn: fc, d: deflaters[i%nloops]}
			zs = append(zs, z)
			c = z
		}
		h.OnOpen(c)
		h.OnText(c, []byte(`{"op":"subscribe","channel":"ch"}`))
	}
	runAll(loops)
	data := quotes(0, 1000)
	deliver := func() {
		for i := 0; i < batch; i++ {
			h.Deliver("ch", data)
		}
		runAll(loops)
	}
	deliver()
	perDeliver := testing.AllocsPerRun(5, deliver) / batch
	frame := frameAllocs()
	var compressions uint64
	for _, d := range deflaters {
		compressions += d.Stats().Messages.Load()
	}
	t.Logf("allocs per Deliver (%d subscribers, half compressed, %d loops): %.3f, of which wsproto frame: %.3f; %d compressions",
		subs, nloops, perDeliver, frame, compressions)
	if extra := perDeliver - frame; extra > 0.05 {
		t.Fatalf("%.3f allocations per Deliver beyond the frame, want 0", extra)
	}
	if want := uint64((1 + 1 + 5) * batch); compressions != want {
		t.Fatalf("%d compressions for %d Delivers", compressions, want)
	}
	if got := zs[0].n.Load(); got != (1+1+5)*batch {
		t.Fatalf("compressed subscriber got %d frames", got)
	}
}
