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
