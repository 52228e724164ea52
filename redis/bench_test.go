package redis

import (
	"context"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/wshub/wshub/hub/history"
	"github.com/wshub/wshub/redis/redistest"
)

// signalSink signals every delivery.
type signalSink struct {
	ch chan struct{}
	n  atomic.Int64
}

func (s *signalSink) Deliver(string, []byte) {
	s.n.Add(1)
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

// A StreamSink too: history publications take the DeliverAt path.
func (s *signalSink) DeliverAt(ch string, _ history.Position, data []byte) { s.Deliver(ch, data) }
func (s *signalSink) Resubscribed(string)                                  {}

func benchBroker(b *testing.B, srv *redistest.Server) (*Broker, *signalSink) {
	br, err := New(Config{URL: srv.URL(), Logger: testLogger(b)})
	must(b, err)
	b.Cleanup(func() { br.Close() })
	sink := &signalSink{ch: make(chan struct{}, 1)}
	must(b, br.Start(sink))
	eventually(b, 5*time.Second, br.Ready, "ready")
	must(b, subscribe(b, br, "bench"))
	return br, sink
}

// One publication at a time: Publish -> Redis -> pub/sub connection -> sink.
func BenchmarkPublishRoundTrip(b *testing.B) {
	srv := redistest.Start(b)
	br, sink := benchBroker(b, srv)
	payload := []byte(`{"text":"hello, this is a 64 byte chat message for the benchmark"}`)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		br.Publish("bench", payload, func(error) {})
		<-sink.ch
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
}

// Many publications in flight: what one instance pushes through Redis and
// back (every publication is delivered once to this instance's sink).
func BenchmarkPublishThroughput(b *testing.B) {
	srv := redistest.Start(b)
	br, sink := benchBroker(b, srv)
	payload := []byte(`{"text":"hello, this is a 64 byte chat message for the benchmark"}`)
	inflight := make(chan struct{}, 2048)
	release := func(error) { <-inflight }
	start := time.Now()
	b.ResetTimer()
	for range b.N {
		inflight <- struct{}{}
		br.Publish("bench", payload, release)
	}
	for sink.n.Load() < int64(b.N) {
		time.Sleep(time.Millisecond) // paces the polling for the last delivery
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// History publications against plain ones, interleaved in one run so that
// a noisy machine weighs on both alike: round trip latency (one at a time,
// Publish -> Redis -> pub/sub -> sink) and throughput (2048 in flight, in
// alternating blocks), as ratios history/plain; then Redis memory per
// retained message (used_memory over 100,000 retained 100-byte messages in
// 1,000 channels of history_size 100).
func BenchmarkPublishHistory(b *testing.B) {
	srv := redistest.Start(b)
	br, sink := benchBroker(b, srv)
	must(b, subscribe(b, br, "bench:h"))
	payload := []byte(`{"text":"hello, this is a 64 byte chat message for the benchmark"}`)
	opt := history.Options{Size: 100, TTL: time.Hour}
	publishers := [2]func(done func()){
		func(done func()) { br.Publish("bench", payload, func(error) { done() }) },
		func(done func()) {
			br.PublishHistory("bench:h", payload, opt, func(history.Position, error) { done() })
		},
	}
	b.Run("roundtrip", func(b *testing.B) {
		var lat [2][]time.Duration
		for i := range b.N {
			for j := range publishers {
				k := (j + i) % 2 // which goes first alternates too
				pub := publishers[k]
				t0 := time.Now()
				pub(func() {})
				<-sink.ch
				lat[k] = append(lat[k], time.Since(t0))
			}
		}
		b.StopTimer()
		var p50, p99 [2]float64
		for k := range lat {
			slices.Sort(lat[k])
			p50[k] = float64(lat[k][len(lat[k])/2].Microseconds())
			p99[k] = float64(lat[k][len(lat[k])*99/100].Microseconds())
		}
		b.ReportMetric(p50[0], "plain-p50-us")
		b.ReportMetric(p99[0], "plain-p99-us")
		b.ReportMetric(p50[1], "hist-p50-us")
		b.ReportMetric(p99[1], "hist-p99-us")
		b.ReportMetric(p50[1]/p50[0], "p50-ratio")
		b.ReportMetric(p99[1]/p99[0], "p99-ratio")
	})
	b.Run("throughput", func(b *testing.B) {
		const block = 5000
		inflight := make(chan struct{}, 2048)
		release := func() { <-inflight }
		var took [2]time.Duration
		var sent [2]int
		for i := 0; i < b.N; i += block {
			for k, pub := range publishers {
				n := min(block, b.N-i)
				want := sink.n.Load() + int64(n)
				start := time.Now()
				for range n {
					inflight <- struct{}{}
					pub(release)
				}
				for sink.n.Load() < want {
					time.Sleep(100 * time.Microsecond) // paces the polling for the last delivery
				}
				took[k] += time.Since(start)
				sent[k] += n
			}
		}
		b.StopTimer()
		plain := float64(sent[0]) / took[0].Seconds()
		hist := float64(sent[1]) / took[1].Seconds()
		b.ReportMetric(plain, "plain-msgs/s")
		b.ReportMetric(hist, "hist-msgs/s")
		b.ReportMetric(plain/hist, "time-ratio")
	})
	b.Run("memory", func(b *testing.B) {
		const chans, per = 1000, 100
		data := []byte(`"` + strings.Repeat("m", 98) + `"`) // 100 bytes of JSON
		admin := srv.Client()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var perMsg float64
		for range b.N {
			must(b, admin.Do(ctx, admin.B().Flushall().Build()).Error())
			before := usedMemory(b, admin)
			inflight := make(chan struct{}, 2048)
			var failed atomic.Int64
			for i := range chans * per {
				inflight <- struct{}{}
				br.PublishHistory("mem:"+strconv.Itoa(i%chans), data, opt, func(_ history.Position, err error) {
					if err != nil {
						failed.Add(1)
					}
					<-inflight
				})
			}
			for range cap(inflight) {
				inflight <- struct{}{} // every answer is in once all slots are ours
			}
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d publications failed", n)
			}
			perMsg = float64(usedMemory(b, admin)-before) / (chans * per)
		}
		b.ReportMetric(perMsg, "redis-B/msg")
	})
}

// usedMemory is INFO memory's used_memory.
func usedMemory(b *testing.B, c rueidis.Client) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := c.Do(ctx, c.B().Info().Section("memory").Build()).ToString()
	must(b, err)
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			must(b, err)
			return n
		}
	}
	b.Fatal("no used_memory in INFO memory")
	return 0
}

// Redis commands per second at rest with 19,000 registered connections and
// the default registry settings (run with -benchtime=1x; the window is
// WSHUB_REST_WINDOW, default 10s).
func BenchmarkRegistryAtRest(b *testing.B) {
	const conns = 19000
	window := restWindow()
	srv := redistest.Start(b)
	br, err := New(Config{URL: srv.URL(), Logger: testLogger(b)})
	must(b, err)
	b.Cleanup(func() { br.Close() })
	must(b, br.Start(newRecSink()))
	eventually(b, 5*time.Second, br.Ready, "ready")
	reg, err := NewRegistry(br, RegistryConfig{})
	must(b, err)
	for i := range conns {
		reg.Add("conn-"+strconv.Itoa(i), "user-"+strconv.Itoa(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Sync returns once the registration burst was written and answered
	// (the registry's pipelines are synchronous), so its commands are all
	// counted before the reset.
	must(b, reg.Sync(ctx))
	b.ResetTimer()
	total, parts := commandsAtRest(b, srv, window)
	b.StopTimer()
	perSec := float64(total) / window.Seconds()
	b.Logf("%d connections at rest, %v window: %d commands (%s)", conns, window, total, parts)
	b.ReportMetric(perSec, "redis-ops/s")
	b.ReportMetric(perSec*60/conns, "ops/conn/min")
}

// restWindow is WSHUB_REST_WINDOW, default 10s: how long the at-rest
// benchmarks count commands.
func restWindow() time.Duration {
	if v, err := time.ParseDuration(os.Getenv("WSHUB_REST_WINDOW")); err == nil {
		return v
	}
	return 10 * time.Second
}

// commandsAtRest resets Redis's command statistics, waits window and
// returns the commands Redis executed meanwhile (INFO and CONFIG RESETSTAT,
// the measurement's own, left out) and the per-command counts.
func commandsAtRest(b *testing.B, srv *redistest.Server, window time.Duration) (int64, string) {
	ctx, cancel := context.WithTimeout(context.Background(), window+10*time.Second)
	defer cancel()
	admin := srv.Client()
	must(b, admin.Do(ctx, admin.B().ConfigResetstat().Build()).Error())
	time.Sleep(window) // the measurement: commands at rest over the window
	info, err := admin.Do(ctx, admin.B().Info().Section("commandstats").Build()).ToString()
	must(b, err)
	var total int64
	var parts []string
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok || name == "cmdstat_info" || name == "cmdstat_config|resetstat" {
			continue
		}
		n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
		total += n
		parts = append(parts, strings.TrimPrefix(name, "cmdstat_")+"="+strconv.FormatInt(n, 10))
	}
	sort.Strings(parts)
	return total, strings.Join(parts, " ")
}

// Time from a killed pub/sub connection to Ready with every channel
// resubscribed, for many channels (run with -benchtime=1x).
func BenchmarkResubscribe50k(b *testing.B) {
	const n = 50000
	srv := redistest.Start(b)
	br, _ := benchBroker(b, srv)
	done := make(chan error, n)
	for i := range n {
		br.Subscribe("rs:"+strconv.Itoa(i), func(err error) { done <- err })
	}
	for range n {
		must(b, <-done)
	}
	admin := srv.Client()
	b.ResetTimer()
	for range b.N {
		before := br.Stats().Reconnects
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		must(b, admin.Do(ctx, admin.B().ClientKill().TypePubsub().Build()).Error())
		cancel()
		eventually(b, 10*time.Second, func() bool { return br.Ready() && br.Stats().Reconnects > before }, "resubscribed")
	}
	b.StopTimer()
	if got := redistest.NumSub(b, admin, "rs:"+strconv.Itoa(n-1), false); got != 1 {
		b.Fatalf("NUMSUB of the last channel = %d", got)
	}
	b.ReportMetric(float64(n), "channels")
}
