package history

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

// BenchmarkStoreAppend appends 100-byte publications round-robin to
// channels whose rings are full, the steady state of a busy gateway: one
// channel (all in cache), or 1000 (10 MB of history, mostly not).
func BenchmarkStoreAppend(b *testing.B) {
	for _, channels := range []int{1, 1000} {
		b.Run(strconv.Itoa(channels), func(b *testing.B) {
			st := NewStore(64<<20, nil)
			names := make([]string, channels)
			for i := range names {
				names[i] = "chan:" + strconv.Itoa(i)
			}
			opt := Options{Size: 100, TTL: time.Minute}
			data := make([]byte, 100)
			for i := range 100 * len(names) {
				st.Append(names[i%len(names)], data, opt, 0)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				st.Append(names[i%len(names)], data, opt, int64(i))
				i++
			}
		})
	}
}

// BenchmarkStoreMemory measures the heap a retained publication takes:
// 100,000 entries of 100 bytes, in 1000 streams of 100 (B/entry), or one
// each in 100,000 streams (B/stream, the entry included); counted is what
// the store counts against its budget for the same.
func BenchmarkStoreMemory(b *testing.B) {
	for _, c := range []struct {
		name            string
		streams, size   int
		metric, counted string
	}{
		{"1000x100", 1000, 100, "B/entry", "counted-B/entry"},
		{"100000x1", 100000, 1, "B/stream", "counted-B/stream"},
	} {
		b.Run(c.name, func(b *testing.B) {
			names := make([]string, c.streams)
			for i := range names {
				names[i] = "chan:" + strconv.Itoa(i)
			}
			data := make([]byte, 100)
			opt := Options{Size: c.size, TTL: time.Minute}
			per := float64(c.streams)
			if c.size > 1 {
				per = float64(c.streams * c.size)
			}
			var heap, counted float64
			for b.Loop() {
				before := heapInuse()
				st := NewStore(1<<30, nil)
				for j := range c.size {
					for _, n := range names {
						st.Append(n, data, opt, int64(j))
					}
				}
				heap += float64(heapInuse()-before) / per
				counted += float64(st.Bytes()) / per
				runtime.KeepAlive(st)
			}
			b.ReportMetric(heap/float64(b.N), c.metric)
			b.ReportMetric(counted/float64(b.N), c.counted)
		})
	}
}

func heapInuse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}
