package redis

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/wshub/wshub/redis/redistest"
)

// benchPresence starts two instances (broker, registry and presence store
// with the default settings) on srv, with members members spread over
// channels channels, alternating between the instances, every member with a
// user of userOf (3,000 users); it returns once every
// member is written.
func benchPresence(b *testing.B, srv *redistest.Server, members, channels int) [2]presInstance {
	var insts [2]presInstance
	for i := range insts {
		br, err := New(Config{URL: srv.URL(), InstanceID: "bench" + strconv.Itoa(i), Logger: testLogger(b)})
		must(b, err)
		b.Cleanup(func() { br.Close() })
		must(b, br.Start(newRecSink()))
		r, err := NewRegistry(br, RegistryConfig{})
		must(b, err)
		p, err := NewPresence(r, PresenceConfig{})
		must(b, err)
		insts[i] = presInstance{br, r, p}
	}
	for i := range members {
		join(insts[i%2].p, "bench:"+strconv.Itoa(i%channels), connOf(i), userOf(i), `{"i":`+strconv.Itoa(i)+`}`)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, in := range insts {
		must(b, in.p.Sync(ctx))
	}
	return insts
}

// Latency of Members and Stats on a channel of 10,000 members across two
// instances, from a third party's view (one of them asking).
func BenchmarkPresenceQuery10k(b *testing.B) {
	srv := redistest.Start(b)
	insts := benchPresence(b, srv, 10000, 1)
	b.Run("Members", func(b *testing.B) {
		for b.Loop() {
			ms, err := queryMembers(insts[0].p, "bench:0")
			if err != nil || len(ms) != 10000 {
				b.Fatalf("%d members, %v", len(ms), err)
			}
		}
	})
	b.Run("Stats", func(b *testing.B) {
		for b.Loop() {
			st, err := queryStats(insts[0].p, "bench:0")
			if err != nil || st.Conns != 10000 || st.Users != 3000 {
				b.Fatalf("%+v, %v", st, err)
			}
		}
	})
}

// Redis commands per second at rest with 10,000 members on two instances
// (default settings: TTL 10m, each channel renewed per instance once per
// 200 s), in 1, 100 or 10,000 channels; run with -benchtime=1x. The total
// includes the registry's heartbeats and the pub/sub probes (about 2/s per
// instance); presence-ops/s are the presence writers' own.
func BenchmarkPresenceAtRest(b *testing.B) {
	const members = 10000
	window := restWindow()
	for _, channels := range []int{1, 100, 10000} {
		b.Run("channels="+strconv.Itoa(channels), func(b *testing.B) {
			srv := redistest.Start(b)
			insts := benchPresence(b, srv, members, channels)
			before := insts[0].b.Stats().PresenceCommands + insts[1].b.Stats().PresenceCommands
			b.ResetTimer()
			total, parts := commandsAtRest(b, srv, window)
			b.StopTimer()
			pres := insts[0].b.Stats().PresenceCommands + insts[1].b.Stats().PresenceCommands - before
			b.Logf("%d members in %d channels at rest, %v window: %d commands (%s); %d by the presence writers",
				members, channels, window, total, parts, pres)
			b.ReportMetric(float64(total)/window.Seconds(), "redis-ops/s")
			b.ReportMetric(float64(pres)/window.Seconds(), "presence-ops/s")
			b.ReportMetric(float64(pres)/window.Seconds()*60/members, "presence-ops/member/min")
		})
	}
}
