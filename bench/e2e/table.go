package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/wshub/wshub/loadtest"
)

// outcome is one server's results in one round.
type outcome struct {
	Idle   *loadtest.Result `json:"idle"`
	Max    *loadtest.Result `json:"fanout_max"`
	Half   *loadtest.Result `json:"fanout_half"`
	Common *loadtest.Result `json:"fanout_common"` // both servers at the same rate: half the slower one's max
}

// metric is one row of the comparison: how to read it from an outcome,
// how to print it, and whether lower is better.
type metric struct {
	name   string
	get    func(o outcome) (float64, bool)
	format func(v float64) string
	lower  bool
}

func metrics(conns, subs, size int) []metric {
	kib := func(v float64) string { return fmt.Sprintf("%.2f KiB", v/1024) }
	num := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	us := func(v float64) string { return fmt.Sprintf("%.3f µs", v) }
	ms := func(v float64) string { return fmt.Sprintf("%.2f ms", v/1000) }
	pct := func(v float64) string { return fmt.Sprintf("%.1f %%", v) }
	return []metric{
		{fmt.Sprintf("idle RSS per connection (%d conns)", conns), func(o outcome) (float64, bool) {
			if o.Idle == nil || o.Idle.Server == nil {
				return 0, false
			}
			return o.Idle.Server.RSSPerConn, true
		}, kib, true},
		{fmt.Sprintf("idle CPU (%d conns)", conns), func(o outcome) (float64, bool) {
			if o.Idle == nil || o.Idle.Server == nil {
				return 0, false
			}
			return o.Idle.Server.CPUPercent, true
		}, pct, true},
		{fmt.Sprintf("deliveries/s (%d subs, %d B)", subs, size), func(o outcome) (float64, bool) {
			if o.Max == nil {
				return 0, false
			}
			return o.Max.DeliveriesPerS, true
		}, num, false},
		{"CPU per delivery", func(o outcome) (float64, bool) {
			if o.Max == nil || o.Max.Server == nil || o.Max.Server.CPUPerDelivery == 0 {
				return 0, false
			}
			return o.Max.Server.CPUPerDelivery, true
		}, us, true},
		{"p99 latency at half max rate", func(o outcome) (float64, bool) {
			if o.Half == nil || o.Half.Latency.Count == 0 {
				return 0, false
			}
			return float64(o.Half.Latency.P99), true
		}, ms, true},
		{"p50 latency at half max rate", func(o outcome) (float64, bool) {
			if o.Half == nil || o.Half.Latency.Count == 0 {
				return 0, false
			}
			return float64(o.Half.Latency.P50), true
		}, ms, true},
		{"deliveries/s at the same rate (half the slower max)", func(o outcome) (float64, bool) {
			if o.Common == nil {
				return 0, false
			}
			return o.Common.DeliveriesPerS, true
		}, num, false},
		{"p99 latency at that same rate", func(o outcome) (float64, bool) {
			if o.Common == nil || o.Common.Latency.Count == 0 {
				return 0, false
			}
			return float64(o.Common.Latency.P99), true
		}, ms, true},
		{"CPU per delivery at that same rate", func(o outcome) (float64, bool) {
			if o.Common == nil || o.Common.Server == nil || o.Common.Server.CPUPerDelivery == 0 {
				return 0, false
			}
			return o.Common.Server.CPUPerDelivery, true
		}, us, true},
		{"lost + errors (all runs)", func(o outcome) (float64, bool) {
			var n float64
			for _, r := range []*loadtest.Result{o.Idle, o.Max, o.Half, o.Common} {
				if r != nil {
					n += float64(r.Lost + r.Errors)
				}
			}
			return n, true
		}, num, true},
	}
}

// median of the values a metric has over rounds.
func median(vals []float64) float64 {
	s := slices.Clone(vals)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return math.NaN()
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// printTable writes the Markdown side-by-side table: each cell the median
// over rounds, and the ratio wshub/reference.
func printTable(w io.Writer, ms []metric, names [2]string, rounds [][2]outcome) {
	fmt.Fprintf(w, "| metric | %s | %s | %s / %s |\n|---|---:|---:|---:|\n", names[0], names[1], names[0], names[1])
	for _, m := range ms {
		var cells [2]string
		var meds [2]float64
		var have [2]bool
		for side := 0; side < 2; side++ {
			var vals []float64
			for _, r := range rounds {
				if v, ok := m.get(r[side]); ok {
					vals = append(vals, v)
				}
			}
			if len(vals) == 0 {
				cells[side] = "n/a"
				continue
			}
			meds[side], have[side] = median(vals), true
			cells[side] = m.format(meds[side])
		}
		ratio := "n/a"
		if have[0] && have[1] && meds[1] != 0 {
			ratio = fmt.Sprintf("%.2fx", meds[0]/meds[1])
			if r := meds[0] / meds[1]; r < 0.1 && r > 0 {
				ratio = fmt.Sprintf("%.3fx", r)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", m.name, cells[0], cells[1], ratio)
	}
}

// describe lists what each run used, for the notes under the table.
func describe(c *config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "idle: %d connections over %d channels, held %v; ", c.conns, c.idleChannels, c.hold)
	fmt.Fprintf(&b, "fanout: %d subscribers on %d channel(s), %d publisher(s), %d B data, %v at max rate (window %d), then %v at half each server's own max, and %v with both at half the slower max; ",
		c.subs, c.channels, c.publishers, c.size, c.duration, c.window, c.duration, c.duration)
	fmt.Fprintf(&b, "%d round(s), alternating which server goes first; medians shown.", c.rounds)
	return b.String()
}

// rateNotes lists the publish rates each round used.
func rateNotes(names [2]string, rounds [][2]outcome) string {
	var b strings.Builder
	for r, res := range rounds {
		fmt.Fprintf(&b, "round %d:", r+1)
		for i, o := range res {
			if o.Max == nil {
				continue
			}
			fmt.Fprintf(&b, " %s max %.0f publishes/s;", names[i], o.Max.PublishesPerS)
			if o.Half != nil {
				fmt.Fprintf(&b, " half %.0f/s;", o.Half.PublishesPerS)
			}
		}
		if c := res[0].Common; c != nil {
			fmt.Fprintf(&b, " same rate %.0f/s", c.PublishesPerS)
		}
		b.WriteString("\n")
	}
	return b.String()
}
