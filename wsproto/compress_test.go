package wsproto

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/gobwas/ws"
	"github.com/klauspost/compress/flate"
)

// sampleJSON is dashboard-like JSON of about n bytes: rows of quotes whose
// keys repeat and whose values vary, as a live feed's messages do.
func sampleJSON(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	syms := []string{"ACME", "GLOBX", "INITECH", "UMBRL", "HOOLI", "STARK", "WAYNE", "CYBRD"}
	b := []byte(`{"type":"quotes","rows":[`)
	for i := 0; len(b) < n-2; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"symbol":"%s","bid":%.2f,"ask":%.2f,"volume":%d,"ts":%d}`,
			syms[r.IntN(len(syms))], 100+r.Float64()*50, 100+r.Float64()*50, r.IntN(1e6), 1767225600000+int64(i)*37)
	}
	b = append(b, "]}"...)
	return b
}

// inflateFrame checks that wire is one final, RSV1 frame of opcode op and
// returns its payload inflated as RFC 7692 §7.2.2 says: the stripped tail
// put back, then a raw inflate.
func inflateFrame(t testing.TB, wire []byte, op ws.OpCode) []byte {
	t.Helper()
	h, err := ws.ReadHeader(bytes.NewReader(wire))
	if err != nil {
		t.Fatal(err)
	}
	if !h.Fin || h.OpCode != op || h.Rsv != ws.Rsv(true, false, false) || h.Masked {
		t.Fatalf("header %+v: want a final unmasked %v frame with RSV1 only", h, op)
	}
	payload := wire[len(wire)-int(h.Length):]
	if hl := len(wire) - int(h.Length); hl != headerLen(int(h.Length)) {
		t.Fatalf("%d-byte header for a %d-byte payload, want the minimal %d", hl, h.Length, headerLen(int(h.Length)))
	}
	out, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(payload), bytes.NewReader(syncFlushTail[:]))))
	if err != nil && err != io.ErrUnexpectedEOF {
		t.Fatalf("inflating: %v", err)
	}
	return out
}

func TestDeflatedInflatesToTheMessage(t *testing.T) {
	d := NewDeflater(DefaultDeflateLevel)
	hex := make([]byte, 300<<10) // still over 64 KiB once deflated: the 10-byte header
	r := rand.New(rand.NewPCG(3, 4))
	for i := range hex {
		hex[i] = "0123456789abcdef"[r.IntN(16)]
	}
	for _, tc := range []struct {
		name    string
		op      ws.OpCode
		payload []byte
	}{
		{"1 KB JSON", ws.OpText, sampleJSON(1000)},                       // 2-byte header
		{"64 KB JSON", ws.OpText, sampleJSON(64 << 10)},                  // 4-byte header
		{"hex over 64 KiB compressed", ws.OpBinary, hex},                 // 10-byte header
		{"repetitive", ws.OpText, bytes.Repeat([]byte(`{"a":1},`), 1e4)}, // one long match
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFrame(tc.op, tc.payload)
			defer f.Release()
			wire := f.Deflated(d, 0)
			if wire == nil {
				t.Fatal("not compressed")
			}
			if len(wire) >= len(f.Bytes()) {
				t.Errorf("compressed frame %d bytes, plain %d", len(wire), len(f.Bytes()))
			}
			if got := inflateFrame(t, wire, tc.op); !bytes.Equal(got, tc.payload) {
				t.Fatalf("inflated %d bytes, not the %d-byte message", len(got), len(tc.payload))
			}
			if !bytes.Equal(f.Bytes()[headerLen(len(tc.payload)):], tc.payload) || f.Bytes()[0] != 0x80|byte(tc.op) {
				t.Fatal("the plain frame changed")
			}
			t.Logf("%d -> %d bytes", len(tc.payload), len(wire))
		})
	}
}

// What goes out plain: control frames, payloads under the minimum, and
// payloads deflate does not shrink (each is then not compressed again).
func TestDeflatedPlain(t *testing.T) {
	d := NewDeflater(DefaultDeflateLevel)
	msg := sampleJSON(512)
	for _, op := range []ws.OpCode{ws.OpClose, ws.OpPing, ws.OpPong} {
		f := NewFrame(op, msg[:100])
		if f.Deflated(d, 0) != nil {
			t.Errorf("%v frame compressed", op)
		}
		f.Release()
	}
	f := NewFrame(ws.OpText, msg)
	if f.Deflated(d, len(msg)+1) != nil {
		t.Error("a payload under minSize compressed")
	}
	if d.Stats().Messages.Load() != 0 {
		t.Fatalf("%d compressions for frames that go out plain", d.Stats().Messages.Load())
	}
	if f.Deflated(d, len(msg)) == nil {
		t.Error("a payload of exactly minSize not compressed")
	}
	f.Release()

	random := make([]byte, 4096)
	r := rand.New(rand.NewPCG(5, 6))
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	for _, p := range [][]byte{random, nil, []byte("x")} {
		f := NewFrame(ws.OpBinary, p)
		before := d.Stats().Messages.Load()
		for range 3 {
			if f.Deflated(d, 0) != nil {
				t.Errorf("%d bytes deflate cannot shrink went out compressed", len(p))
			}
		}
		if n := d.Stats().Messages.Load() - before; n != 1 {
			t.Errorf("%d-byte incompressible payload compressed %d times, want once", len(p), n)
		}
		f.Release()
	}
	if got := d.Stats().Incompressible.Load(); got != 3 {
		t.Errorf("Incompressible = %d, want 3", got)
	}
}

// No context takeover: every message is compressed from an empty window,
// so the same message compresses to the same bytes however many came
// before, and each inflates on its own with a fresh inflater.
func TestDeflatedNoContextTakeover(t *testing.T) {
	d := NewDeflater(DefaultDeflateLevel)
	msg := sampleJSON(2000)
	first := NewFrame(ws.OpText, msg)
	defer first.Release()
	want := first.Deflated(d, 0)
	for i := range 5 {
		f := NewFrame(ws.OpText, msg)
		got := f.Deflated(d, 0)
		if !bytes.Equal(got, want) {
			t.Fatalf("message %d compressed to %d bytes, the first to %d: context carried over", i, len(got), len(want))
		}
		if !bytes.Equal(inflateFrame(t, got, ws.OpText), msg) {
			t.Fatal("does not inflate on its own")
		}
		f.Release()
	}
}

// Holders on many goroutines (the loops) ask at once: the message is
// compressed exactly once and every one gets the same bytes.
func TestDeflatedOnceAcrossGoroutines(t *testing.T) {
	const holders, rounds = 8, 50
	ds := make([]*Deflater, holders) // one per "loop"
	for i := range ds {
		ds[i] = NewDeflater(DefaultDeflateLevel)
	}
	msg := sampleJSON(8 << 10)
	for range rounds {
		f := NewFrame(ws.OpText, msg)
		got := make([][]byte, holders)
		var start, wg sync.WaitGroup
		start.Add(1)
		for i := range holders {
			f.Retain()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer f.Release()
				start.Wait()
				got[i] = f.Deflated(ds[i], 0)
				if !bytes.Equal(inflateFrame(t, got[i], ws.OpText), msg) {
					t.Error("wrong bytes")
				}
			}()
		}
		start.Done()
		f.Release()
		wg.Wait()
		for i := range got {
			if &got[i][0] != &got[0][0] {
				t.Fatal("holders got different copies")
			}
		}
	}
	var n uint64
	for _, d := range ds {
		n += d.Stats().Messages.Load()
	}
	if n != rounds {
		t.Fatalf("%d compressions for %d messages", n, rounds)
	}
}

// The compressed buffer goes back to its pool with the frame.
func TestDeflatedReleased(t *testing.T) {
	d := NewDeflater(DefaultDeflateLevel)
	f := NewFrame(ws.OpText, sampleJSON(1000))
	f.Retain()
	f.Deflated(d, 0)
	f.Release()
	if f.z.bb == nil {
		t.Fatal("released while a holder remains")
	}
	f.Release()
	if f.z.bb != nil || f.Bytes() != nil {
		t.Fatal("buffers kept after the last release")
	}
}

// Looking up a frame already compressed allocates nothing; compressing
// one allocates nothing either once the pools are warm.
func TestDeflatedAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	d := NewDeflater(DefaultDeflateLevel)
	msg := sampleJSON(1000)
	f := NewFrame(ws.OpText, msg)
	defer f.Release()
	f.Deflated(d, 0)
	if a := testing.AllocsPerRun(1000, func() { f.Deflated(d, 0) }); a != 0 {
		t.Errorf("%v allocations per lookup, want 0", a)
	}
	if a := testing.AllocsPerRun(200, func() {
		g := NewFrame(ws.OpText, msg)
		g.Deflated(d, 0)
		g.Release()
	}); a > 1 {
		t.Errorf("%v allocations per compressed frame, want at most 1 (the Frame struct)", a)
	}
}

// BenchmarkCompressOnce is one publication to `subs` compressed subscribers:
// the frame is built, compressed by the first subscriber's lookup, and the
// others get the shared bytes. ns/op is per publication; ns/delivery and
// allocs are what subscribers add; ratio is compressed/plain wire bytes.
func BenchmarkCompressOnce(b *testing.B) {
	for _, tc := range []struct {
		size, subs, level int
	}{{1 << 10, 5000, DefaultDeflateLevel}, {16 << 10, 5000, DefaultDeflateLevel}, {1 << 20, 5000, DefaultDeflateLevel},
		{1 << 10, 5000, 5}, {1 << 20, 5000, 5}} {
		b.Run(fmt.Sprintf("size=%d/subs=%d/level=%d", tc.size, tc.subs, tc.level), func(b *testing.B) {
			d := NewDeflater(tc.level)
			msg := sampleJSON(tc.size)
			var wire int
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				f, p := BuildFrame(ws.OpText, len(msg))
				copy(p, msg)
				for range tc.subs {
					wire = len(f.Deflated(d, 0))
				}
				f.Release()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tc.subs), "ns/delivery")
			b.ReportMetric(float64(wire)/float64(len(msg)+headerLen(len(msg))), "ratio")
			b.ReportMetric(float64(d.Stats().Nanos.Load())/float64(d.Stats().Messages.Load()), "ns/compression")
		})
	}
}
