package loadtest

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestHistogramExactBelowLinearRegion(t *testing.T) {
	h := NewHistogram()
	for v := int64(1); v <= 100; v++ {
		h.Record(v)
	}
	cases := []struct {
		q    float64
		want int64
	}{{0.5, 50}, {0.9, 90}, {0.99, 99}, {0.999, 100}, {1, 100}, {0, 1}}
	for _, c := range cases {
		if got := h.Quantile(c.q); got != c.want {
			t.Errorf("Quantile(%v) = %d, want %d", c.q, got, c.want)
		}
	}
	s := h.Summarize()
	if s.Count != 100 || s.Max != 100 || s.Mean != 50.5 {
		t.Errorf("summary %+v", s)
	}
}

// TestHistogramRelativeError checks every quantile of a wide random
// sample against the exact order statistic, within the bucket precision.
func TestHistogramRelativeError(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	h := NewHistogram()
	vals := make([]int64, 50000)
	for i := range vals {
		// log-uniform from 1 µs to ~17 s
		vals[i] = int64(1) << r.IntN(24)
		vals[i] += r.Int64N(vals[i])
		h.Record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 0.9999} {
		exact := vals[int(q*float64(len(vals))+0.999999)-1]
		got := h.Quantile(q)
		if got < exact || float64(got-exact) > float64(exact)/64+1 {
			t.Errorf("q=%v: got %d, exact %d (outside 1/64)", q, got, exact)
		}
	}
	if h.Quantile(1) != vals[len(vals)-1] || h.Max != vals[len(vals)-1] {
		t.Errorf("max: %d vs %d", h.Quantile(1), vals[len(vals)-1])
	}
}

func TestHistogramBucketsAreContiguous(t *testing.T) {
	// Each bucket's high bound + 1 must start the next bucket.
	for i := 0; i < bucketOf(histMaxValue-1); i++ {
		hi := bucketHigh(i)
		if bucketOf(hi) != i || bucketOf(hi+1) != i+1 {
			t.Fatalf("bucket %d: high %d maps to %d, next to %d", i, hi, bucketOf(hi), bucketOf(hi+1))
		}
	}
	if bucketOf(histMaxValue-1) >= histBuckets {
		t.Fatalf("max value bucket %d out of range %d", bucketOf(histMaxValue-1), histBuckets)
	}
}

func TestHistogramMergeAndSparseRoundTrip(t *testing.T) {
	a, b, all := NewHistogram(), NewHistogram(), NewHistogram()
	for v := int64(0); v < 5000; v += 7 {
		a.Record(v * 3)
		all.Record(v * 3)
	}
	for v := int64(0); v < 900000; v += 1013 {
		b.Record(v)
		all.Record(v)
	}
	a.Merge(b)
	raw, err := json.Marshal(a.Sparse())
	if err != nil {
		t.Fatal(err)
	}
	var sp Sparse
	if err := json.Unmarshal(raw, &sp); err != nil {
		t.Fatal(err)
	}
	got := sp.Histogram()
	if got.Summarize() != all.Summarize() || got.Min != all.Min {
		t.Fatalf("merged %+v, want %+v", got.Summarize(), all.Summarize())
	}
	h := NewHistogram()
	h.Record(-5)
	h.Record(histMaxValue * 4)
	if h.Min != 0 || h.Max != histMaxValue-1 {
		t.Fatalf("clamping: min %d max %d", h.Min, h.Max)
	}
}
