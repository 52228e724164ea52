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
	// RedisCPU is redis-server's CPU over each run (by label), setup
	// included, when the deployment has Redis.
	RedisCPU map[string]redisCPU `json:"redis_cpu,omitempty"`
}

// redisCPU is redis-server's CPU time over one wsload run.
type redisCPU struct {
	Seconds float64 `json:"cpu_s"`
	Wall    float64 `json:"wall_s"`
}

// metric is one row of the comparison: how to read it from an outcome and
// how to print it.
type metric struct {
	name   string
	get    func(o outcome) (float64, bool)
	format func(v float64) string
}

// Which run of an outcome a row reads.
func idleRun(o outcome) *loadtest.Result   { return o.Idle }
func maxRun(o outcome) *loadtest.Result    { return o.Max }
func halfRun(o outcome) *loadtest.Result   { return o.Half }
func commonRun(o outcome) *loadtest.Result { return o.Common }

// What a row reads from that run; false when the run lacks it.
func deliveriesPerS(r *loadtest.Result) (float64, bool) { return r.DeliveriesPerS, true }
func p99(r *loadtest.Result) (float64, bool)            { return float64(r.Latency.P99), r.Latency.Count > 0 }
func p50(r *loadtest.Result) (float64, bool)            { return float64(r.Latency.P50), r.Latency.Count > 0 }
func rssPerConn(r *loadtest.Result) (float64, bool) {
	return stats(r).RSSPerConn, r.Server != nil
}
func serverCPUPercent(r *loadtest.Result) (float64, bool) {
	return stats(r).CPUPercent, r.Server != nil
}
func cpuPerDelivery(r *loadtest.Result) (float64, bool) {
	return stats(r).CPUPerDelivery, stats(r).CPUPerDelivery != 0
}

func stats(r *loadtest.Result) *loadtest.ServerStats {
	if r.Server == nil {
		return &loadtest.ServerStats{}
	}
	return r.Server
}

// row is the metric reading val from the run that run picks.
func row(name string, run func(outcome) *loadtest.Result, val func(*loadtest.Result) (float64, bool), format func(float64) string) metric {
	return metric{name, func(o outcome) (float64, bool) {
		r := run(o)
		if r == nil {
			return 0, false
		}
		return val(r)
	}, format}
}

// lostAndErrors sums lost deliveries and errors over every run.
var lostAndErrors = metric{"lost + errors (all runs)", func(o outcome) (float64, bool) {
	var n float64
	for _, r := range []*loadtest.Result{o.Idle, o.Max, o.Half, o.Common} {
		if r != nil {
			n += float64(r.Lost + r.Errors)
		}
	}
	return n, true
}, num}

func kib(v float64) string { return fmt.Sprintf("%.2f KiB", v/1024) }
func num(v float64) string { return fmt.Sprintf("%.0f", v) }
func us(v float64) string  { return fmt.Sprintf("%.3f µs", v) }
func ms(v float64) string  { return fmt.Sprintf("%.2f ms", v/1000) }
func pct(v float64) string { return fmt.Sprintf("%.1f %%", v) }

// metrics are the rows of the wshub vs reference hub table.
func metrics(conns, subs, size int) []metric {
	return []metric{
		row(fmt.Sprintf("idle RSS per connection (%d conns)", conns), idleRun, rssPerConn, kib),
		row(fmt.Sprintf("idle CPU (%d conns)", conns), idleRun, serverCPUPercent, pct),
		row(fmt.Sprintf("deliveries/s (%d subs, %d B)", subs, size), maxRun, deliveriesPerS, num),
		row("CPU per delivery", maxRun, cpuPerDelivery, us),
		row("p99 latency at half max rate", halfRun, p99, ms),
		row("p50 latency at half max rate", halfRun, p50, ms),
		row("deliveries/s at the same rate (half the slower max)", commonRun, deliveriesPerS, num),
		row("p99 latency at that same rate", commonRun, p99, ms),
		row("CPU per delivery at that same rate", commonRun, cpuPerDelivery, us),
		lostAndErrors,
	}
}

// redisMetrics are the rows of the cross-instance (Redis) vs in-memory
// table; CPU figures are summed over every gateway of a side.
func redisMetrics(subs, size int) []metric {
	return []metric{
		row(fmt.Sprintf("deliveries/s (%d subs, %d B)", subs, size), maxRun, deliveriesPerS, num),
		row("CPU per delivery, all gateways", maxRun, cpuPerDelivery, us),
		row("gateway CPU at max rate, all gateways", maxRun, serverCPUPercent, pct),
		row("p99 latency at half max rate", halfRun, p99, ms),
		row("p50 latency at half max rate", halfRun, p50, ms),
		lostAndErrors,
	}
}

// table is one comparison as printed.
type table struct {
	key     string // its key in the --json file
	title   string
	names   [2]string
	ratio   string // the ratio column's header
	metrics []metric
	rounds  [][2]outcome
	notes   string
}

// writeTables prints each table with its title and notes.
func writeTables(w io.Writer, tables []table) {
	for i, t := range tables {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "### %s\n\n", t.title)
		printTable(w, t.metrics, t.names, t.ratio, t.rounds)
		fmt.Fprintf(w, "\n%s", t.notes)
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
// over rounds, and the ratio of the first column to the second.
func printTable(w io.Writer, ms []metric, names [2]string, ratio string, rounds [][2]outcome) {
	fmt.Fprintf(w, "| metric | %s | %s | %s |\n|---|---:|---:|---:|\n", names[0], names[1], ratio)
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

// describeRedis says what the Redis table's runs used.
func describeRedis(c *config) string {
	return fmt.Sprintf("cross-instance: %d subscribers split over two wshub instances on one redis-server (started on a free loopback port), "+
		"%d publisher(s) on a third instance (wsload --publish-target), against the same %d subscribers and publisher(s) on one wshub with the in-memory broker; "+
		"%d channel(s), %d B data, %v at max rate (window %d), then %v at half each side's own max; fresh processes for every run; "+
		"CPU per delivery sums every gateway of a side (Redis not included); %d round(s), alternating which side goes first; medians shown.",
		c.redisSubs, c.publishers, c.redisSubs, c.channels, c.size, c.duration, c.window, c.duration, c.rounds)
}

// redisNotes reports redis-server's own CPU in each max-rate run.
func redisNotes(rounds [][2]outcome) string {
	var b strings.Builder
	for r, res := range rounds {
		if rc, ok := res[0].RedisCPU["max"]; ok && rc.Wall > 0 {
			fmt.Fprintf(&b, "round %d: redis-server used %.2f s CPU (%.1f %% of a core) over the max-rate run, setup included\n", r+1, rc.Seconds, 100*rc.Seconds/rc.Wall)
		}
	}
	return b.String()
}
