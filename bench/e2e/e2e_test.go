package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wshub/wshub/loadtest"
)

// The binaries are built once, for every test that needs them.
var (
	binsOnce sync.Once
	binsDir  string
	binsErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binsDir != "" {
		os.RemoveAll(binsDir)
	}
	os.Exit(code)
}

func builtBins(t *testing.T) string {
	t.Helper()
	binsOnce.Do(func() {
		if binsDir, binsErr = os.MkdirTemp("", "bench-e2e-test-bin-"); binsErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		binsErr = buildAll(ctx, binsDir)
	})
	if binsErr != nil {
		t.Fatal(binsErr)
	}
	return binsDir
}

func TestTableMediansAndRatios(t *testing.T) {
	mk := func(rssPerConn, dps float64) outcome {
		return outcome{
			Idle: &loadtest.Result{Server: &loadtest.ServerStats{RSSPerConn: rssPerConn}},
			Max:  &loadtest.Result{DeliveriesPerS: dps},
		}
	}
	rounds := [][2]outcome{
		{mk(1024, 1000), mk(32768, 500)},
		{mk(2048, 3000), mk(32768, 500)},
		{mk(1536, 2000), mk(16384, 1000)},
	}
	var b bytes.Buffer
	printTable(&b, metrics(19000, 5000, 200), [2]string{"a", "b"}, "a / b", rounds)
	out := b.String()
	for _, want := range []string{
		"| idle RSS per connection (19000 conns) | 1.50 KiB | 32.00 KiB | 0.047x |",
		"| deliveries/s (5000 subs, 200 B) | 2000 | 500 | 4.00x |",
		"| CPU per delivery | n/a | n/a | n/a |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if m := median([]float64{3, 1, 2, 10}); m != 2.5 {
		t.Errorf("median %v", m)
	}
}

// TestBenchAgainstWshubAndRefhub runs the whole runner at toy scale: it
// builds wshub, refhub and wsload and drives both servers as subprocesses,
// which also tests the load generator against the real gateway.
func TestBenchAgainstWshubAndRefhub(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three binaries")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	bins := builtBins(t)
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	c := &config{conns: 200, idleChannels: 10, hold: 300 * time.Millisecond, subs: 50, channels: 1, publishers: 1,
		size: 200, window: 32, duration: 700 * time.Millisecond, rounds: 1, procs: 1, binDir: bins, jsonOut: jsonPath}
	var out, errb bytes.Buffer
	if err := bench(ctx, c, &out, &errb); err != nil {
		t.Fatalf("bench: %v\n%s", err, errb.String())
	}
	table := out.String()
	// The reference hub may drop a subscriber at max rate on a busy
	// machine (its queue overflows): that is its design, so only wshub
	// must be lossless.
	if !strings.Contains(table, "| metric | wshub | refhub (goroutine/conn) |") || !strings.Contains(table, "| lost + errors (all runs) | 0 |") {
		t.Fatalf("table:\n%s\nlog:\n%s", table, errb.String())
	}
	var saved struct{ Rounds [][2]outcome }
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &saved); err != nil {
		t.Fatal(err)
	}
	for side, o := range saved.Rounds[0] {
		if o.Idle.Connected != 200 || o.Idle.Server == nil || o.Idle.Server.RSSPerConn <= 0 {
			t.Errorf("side %d idle: %+v", side, o.Idle)
		}
		for _, r := range []*loadtest.Result{o.Max, o.Half, o.Common} {
			if r == nil || r.Expected == 0 || r.Delivered+r.Lost != r.Expected || (side == 0 && r.Lost != 0) {
				t.Errorf("side %d fanout: %+v", side, r)
			}
		}
		if o.Max.Server == nil || o.Max.Server.CPUPerDelivery <= 0 {
			t.Errorf("side %d: no CPU per delivery", side)
		}
	}
}

// TestRedisScenario runs only the cross-instance table at toy scale: a
// redis-server the runner starts itself, two subscriber instances and a
// publisher instance on it, against one in-memory instance.
func TestRedisScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries and redis-server")
	}
	if !haveRedis() {
		t.Skip("redis-server not on PATH (apt-get install redis-server)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	c := &config{noRefhub: true, redis: true, redisSubs: 60, channels: 1, publishers: 1, size: 200, window: 32,
		duration: 700 * time.Millisecond, rounds: 1, procs: 1, binDir: builtBins(t), jsonOut: jsonPath}
	var out, errb bytes.Buffer
	if err := bench(ctx, c, &out, &errb); err != nil {
		t.Fatalf("bench: %v\n%s", err, errb.String())
	}
	table := out.String()
	if strings.Contains(table, "refhub") || !strings.Contains(table, "| metric | 2 wshub on Redis (+1 for the publisher) | 1 wshub in memory | Redis / memory |") ||
		!strings.Contains(table, "| lost + errors (all runs) | 0 | 0 |") || !strings.Contains(table, "redis-server used") {
		t.Fatalf("table:\n%s\nlog:\n%s", table, errb.String())
	}
	var saved map[string]struct{ Rounds [][2]outcome }
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &saved); err != nil {
		t.Fatal(err)
	}
	rounds := saved["redis"].Rounds
	if len(rounds) != 1 {
		t.Fatalf("saved %s", raw)
	}
	// Side 0: subscribers on two instances, the publisher on a third, every
	// gateway's CPU summed; side 1: everyone on one instance.
	for side, want := range []struct{ targets, pubTargets, pids int }{{2, 1, 3}, {1, 0, 1}} {
		o := rounds[0][side]
		for _, r := range []*loadtest.Result{o.Max, o.Half} {
			if r == nil || r.Connected != 61 || r.Expected == 0 || r.Delivered != r.Expected || r.Errors != 0 {
				t.Fatalf("side %d fanout: %+v", side, r)
			}
			if len(r.Targets) != want.targets || len(r.PublishTargets) != want.pubTargets || r.Server == nil || len(r.Server.PIDs) != want.pids {
				t.Errorf("side %d: targets %v publish targets %v server %+v", side, r.Targets, r.PublishTargets, r.Server)
			}
		}
		if _, ok := o.RedisCPU["max"]; ok != (side == 0) {
			t.Errorf("side %d: Redis CPU %v", side, o.RedisCPU)
		}
	}
}
