package wsproto

import (
	"fmt"
	"strings"
	"testing"
)

// benchJSON is about n bytes of the JSON a dashboard publishes.
func benchJSON(n int) string {
	var b strings.Builder
	b.WriteString(`{"op":"message","channel":"metrics:eu-west","data":[`)
	for i := 0; b.Len() < n-2; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"host":"web-%03d","cpu":%d.%d,"mem":%d,"status":"%s"}`,
			i%97, i*37%100, i%10, 1000+i*7919%5000, []string{"ok", "warn", "ok", "ok", "down"}[i%5])
	}
	b.WriteString("]}")
	return b.String()
}

// zeroMasked encodes frames with an all-zero mask key: legal, and Next's
// unmasking in place then leaves the bytes as they are, so one buffer
// serves every iteration.
func zeroMasked(frames ...frameSpec) []byte {
	out := wire(frames...)
	for off := 0; off < len(out); {
		hdr, n := 2, int(out[off+1]&0x7f)
		switch n {
		case 126:
			hdr, n = 4, int(out[off+2])<<8|int(out[off+3])
		case 127:
			panic("zeroMasked: frame too long")
		}
		key := testMask
		for i := range n {
			out[off+hdr+4+i] ^= key[i%4]
		}
		clear(out[off+hdr : off+hdr+4])
		off += hdr + 4 + n
	}
	return out
}

// BenchmarkInflate decodes compressed client messages: a 1 KiB deflate bomb
// (1 MiB inflated) refused at the default 64 KiB limit, and JSON of 16 KiB
// in one frame and in four, and of 1 KiB. Throughput is of inflated bytes
// (up to the limit for the bomb); wire-bytes is the frames' size.
func BenchmarkInflate(b *testing.B) {
	small, large := benchJSON(1<<10), benchJSON(16<<10)
	bomb := strings.Repeat("a", 1<<20)
	cases := []struct {
		name   string
		frames []frameSpec
		out    int
		tooBig bool
	}{
		// Largest first: a bytebufferpool keeps only buffers up to the 95th
		// percentile of the sizes it saw (recalibrating every 42,000
		// puts), so a case after a smaller one would measure the pool's
		// recalibration, not inflating. Each case alone allocates as here.
		{name: "bomb-1KiB-refused", frames: []frameSpec{compressed(2, bomb)}, out: DefaultMaxMessage, tooBig: true},
		{name: "json-16KiB", frames: []frameSpec{compressed(1, large)}, out: len(large)},
		{name: "json-16KiB-4frames", frames: compressedFrags(1, large, 4), out: len(large)},
		{name: "json-1KiB", frames: []frameSpec{compressed(1, small)}, out: len(small)},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			in := zeroMasked(tc.frames...)
			var d Decoder
			d.Init(0)
			d.AllowCompressed(true)
			b.ReportAllocs()
			b.SetBytes(int64(tc.out))
			for b.Loop() {
				for buf := in; ; {
					ev, n, err := d.Next(buf)
					if tc.tooBig {
						if err != errTooBig {
							b.Fatal(err)
						}
						d.Reset()
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					if n == 0 {
						break
					}
					if ev.Kind == EventText && len(ev.Payload) != tc.out {
						b.Fatalf("inflated %d bytes", len(ev.Payload))
					}
					buf = buf[n:]
				}
			}
			b.ReportMetric(float64(len(in)), "wire-bytes") // after the loop, whose start resets metrics
		})
	}
}
