package loadtest

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records latencies in microseconds in log-linear buckets (HDR
// style): values below 2^histPrecision are exact, larger ones fall into
// buckets no wider than 1/2^(histPrecision-1) of their value (under 1.6 %).
// It is not safe for concurrent use: each poller owns one and the owners
// are merged once at the end, which is also how worker processes combine.
type Histogram struct {
	Counts []int64 // per bucket, len histBuckets; exported so reports can carry it
	N      int64   // values recorded
	Sum    int64   // sum of values, µs, for the mean
	Min    int64   // smallest value, µs (valid when N > 0)
	Max    int64   // largest value, µs, exact (not bucketed)
}

const (
	histPrecision = 7                  // 128 exact values, then 64 sub-buckets per power of two
	histMaxValue  = int64(1) << 36     // ~19 hours in µs; larger values are clamped
	histLinear    = 1 << histPrecision // size of the exact region
	histHalf      = histLinear / 2
	// histBuckets covers bit lengths up to 37 (values < 2^37).
	histBuckets = histLinear + (37-histPrecision)*histHalf
)

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{Counts: make([]int64, histBuckets)}
}

// bucketOf maps a non-negative value to its bucket index.
func bucketOf(v int64) int {
	if v < histLinear {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - histPrecision // >= 1
	m := v >> uint(shift)                          // in [histHalf, histLinear)
	return histLinear + (shift-1)*histHalf + int(m-histHalf)
}

// bucketHigh is the largest value that maps to bucket i.
func bucketHigh(i int) int64 {
	if i < histLinear {
		return int64(i)
	}
	shift := (i-histLinear)/histHalf + 1
	m := int64((i-histLinear)%histHalf + histHalf)
	return (m+1)<<uint(shift) - 1
}

// Record adds one value in microseconds. Negative values (clock steps
// between processes) count as 0.
func (h *Histogram) Record(us int64) {
	if us < 0 {
		us = 0
	}
	if us >= histMaxValue {
		us = histMaxValue - 1
	}
	h.Counts[bucketOf(us)]++
	if h.N == 0 || us < h.Min {
		h.Min = us
	}
	if us > h.Max {
		h.Max = us
	}
	h.N++
	h.Sum += us
}

// RecordDuration adds one duration, truncated to microseconds.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(d.Microseconds()) }

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.N == 0 {
		return
	}
	if len(h.Counts) < histBuckets {
		h.Counts = append(h.Counts, make([]int64, histBuckets-len(h.Counts))...)
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	if h.N == 0 || o.Min < h.Min {
		h.Min = o.Min
	}
	if o.Max > h.Max {
		h.Max = o.Max
	}
	h.N += o.N
	h.Sum += o.Sum
}

// Reset forgets every value and keeps the buckets' memory.
func (h *Histogram) Reset() {
	clear(h.Counts)
	h.N, h.Sum, h.Min, h.Max = 0, 0, 0, 0
}

// Quantile returns the value at quantile q in [0,1]: the highest value of
// the bucket holding the ceil(q*N)-th smallest value, never above Max.
// It is 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) int64 {
	if h.N == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.N)))
	if rank < 1 {
		rank = 1
	}
	var seen int64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank {
			return min(bucketHigh(i), h.Max)
		}
	}
	return h.Max
}

// Mean returns the arithmetic mean in microseconds (0 when empty).
func (h *Histogram) Mean() float64 {
	if h.N == 0 {
		return 0
	}
	return float64(h.Sum) / float64(h.N)
}

// Summary is the percentile digest carried by reports, in microseconds.
type Summary struct {
	Count int64   `json:"count"`
	P50   int64   `json:"p50"`
	P90   int64   `json:"p90"`
	P99   int64   `json:"p99"`
	P999  int64   `json:"p999"`
	Max   int64   `json:"max"`
	Mean  float64 `json:"mean"`
}

// Summarize computes the standard percentiles.
func (h *Histogram) Summarize() Summary {
	return Summary{
		Count: h.N,
		P50:   h.Quantile(0.50),
		P90:   h.Quantile(0.90),
		P99:   h.Quantile(0.99),
		P999:  h.Quantile(0.999),
		Max:   h.Max,
		Mean:  math.Round(h.Mean()*10) / 10,
	}
}

// Sparse is a compact form of a histogram for JSON between processes:
// pairs of (bucket index, count) for the non-empty buckets.
type Sparse struct {
	Buckets [][2]int64 `json:"buckets"`
	N       int64      `json:"n"`
	Sum     int64      `json:"sum"`
	Min     int64      `json:"min"`
	Max     int64      `json:"max"`
}

// Sparse returns the compact form of h.
func (h *Histogram) Sparse() Sparse {
	s := Sparse{N: h.N, Sum: h.Sum, Min: h.Min, Max: h.Max}
	for i, c := range h.Counts {
		if c != 0 {
			s.Buckets = append(s.Buckets, [2]int64{int64(i), c})
		}
	}
	return s
}

// Histogram rebuilds a histogram from its compact form; out-of-range
// bucket indexes are ignored.
func (s Sparse) Histogram() *Histogram {
	h := NewHistogram()
	for _, b := range s.Buckets {
		if b[0] >= 0 && b[0] < histBuckets {
			h.Counts[b[0]] += b[1]
		}
	}
	h.N, h.Sum, h.Min, h.Max = s.N, s.Sum, s.Min, s.Max
	return h
}
