// Command e2e is `make bench-e2e`: it builds wshub, the reference hub
// (bench/refhub: goroutine per connection, gorilla/websocket) and wsload,
// runs the same idle and fanout scenarios against each server, alternating
// which goes first in each round, and prints a side-by-side Markdown table
// with ratios (wshub / reference).
//
// When redis-server is on PATH (or with --redis-scenario) a second table
// follows: fan-out across instances, the subscribers split over two wshub
// instances on a redis-server the runner starts on a free loopback port,
// the publisher on a third instance, against the same subscribers on one
// wshub with the in-memory broker.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	conns, idleChannels             int
	subs, channels, publishers      int
	size, window, rounds, procs     int
	hold, duration                  time.Duration
	jsonOut, mdOut, binDir, workDir string
	keepGoing                       bool
	noRefhub                        bool // skip the reference hub table
	redis                           bool // run the cross-instance Redis table
	redisSubs                       int  // its subscribers in total
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	c := &config{}
	fs := flag.NewFlagSet("bench-e2e", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.conns, "conns", 19000, "idle: connections held")
	fs.IntVar(&c.idleChannels, "idle-channels", 100, "idle: channels the connections subscribe to")
	fs.DurationVar(&c.hold, "hold", 5*time.Second, "idle: how long the connections are held")
	fs.IntVar(&c.subs, "subs", 5000, "fanout: subscribers")
	fs.IntVar(&c.channels, "channels", 1, "fanout: channels")
	fs.IntVar(&c.publishers, "publishers", 1, "fanout: publishers")
	fs.IntVar(&c.size, "size", 200, "fanout: bytes of data per publication")
	fs.IntVar(&c.window, "window", 32, "fanout: publications in flight per publisher at max rate")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "fanout: length of each publishing run")
	fs.IntVar(&c.rounds, "rounds", 1, "rounds; each runs both servers, alternating which goes first")
	fs.IntVar(&c.procs, "procs", 1, "wsload worker processes")
	fs.StringVar(&c.jsonOut, "json", "", "also write every run's result as JSON to this file")
	fs.StringVar(&c.mdOut, "md", "", "also write the table to this Markdown file")
	fs.StringVar(&c.binDir, "bin", "", "directory with prebuilt wshub, refhub and wsload (default: build them)")
	fs.BoolVar(&c.keepGoing, "keep-going", false, "print the table even when a run fails (its cells show n/a)")
	refhub := fs.Bool("refhub-scenario", true, "run the wshub vs reference hub table (false: only the Redis one)")
	fs.BoolVar(&c.redis, "redis-scenario", haveRedis(), "run the cross-instance fan-out table on Redis (default: on when redis-server is on PATH)")
	fs.IntVar(&c.redisSubs, "redis-subs", 0, "Redis table: subscribers in total, half on each of the two subscriber instances (default 2 x --subs)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c.noRefhub = !*refhub
	if c.redisSubs <= 0 {
		c.redisSubs = 2 * c.subs
	}
	if c.redis && !haveRedis() {
		fmt.Fprintln(stderr, "bench-e2e: --redis-scenario needs redis-server on PATH (apt-get install redis-server)")
		return 2
	}
	if c.noRefhub && !c.redis {
		fmt.Fprintln(stderr, "bench-e2e: nothing to run: --refhub-scenario=false and no --redis-scenario")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx, c, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "bench-e2e:", err)
		return 1
	}
	return 0
}

func bench(ctx context.Context, c *config, stdout, stderr io.Writer) error {
	work, err := os.MkdirTemp("", "wshub-bench-e2e-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	c.workDir = work
	bins := c.binDir
	if bins == "" {
		bins = filepath.Join(work, "bin")
		fmt.Fprintln(stderr, "building wshub, refhub and wsload ...")
		if err := buildAll(ctx, bins); err != nil {
			return err
		}
	}
	b := &bencher{c: c, wsload: filepath.Join(bins, "wsload"), stderr: stderr}
	wshub := serverSpec{name: "wshub", bin: filepath.Join(bins, "wshub")}
	var tables []table
	if !c.noRefhub {
		t, err := b.refhubTable(ctx, wshub, serverSpec{name: "refhub", bin: filepath.Join(bins, "refhub")})
		if err != nil {
			return err
		}
		tables = append(tables, t)
	}
	if c.redis {
		t, err := b.redisTable(ctx, wshub)
		if err != nil {
			return err
		}
		tables = append(tables, t)
	}
	fmt.Fprintln(stdout)
	writeTables(stdout, tables)
	if c.mdOut != "" {
		f, err := os.Create(c.mdOut)
		if err != nil {
			return err
		}
		writeTables(f, tables)
		f.Close()
	}
	if c.jsonOut != "" {
		out := map[string]any{}
		for _, t := range tables {
			out[t.key] = map[string]any{"servers": t.names, "rounds": t.rounds}
		}
		if len(tables) > 0 && tables[0].key == "refhub" { // the layout before the Redis table existed
			out["servers"], out["rounds"] = tables[0].names, tables[0].rounds
		}
		j, _ := json.MarshalIndent(out, "", "  ")
		if err := os.WriteFile(c.jsonOut, j, 0o644); err != nil {
			return err
		}
	}
	return b.firstErr
}

// refhubTable: wshub against the goroutine-per-connection reference hub,
// idle and fanout.
func (b *bencher) refhubTable(ctx context.Context, wshub, refhub serverSpec) (table, error) {
	c := b.c
	sides := [2]deployment{single(wshub), single(refhub)}
	rounds, err := b.compare(ctx, sides,
		func(ctx context.Context, d deployment, o *outcome) error {
			return b.measureMax(ctx, d, o, c.subs, true)
		},
		func(ctx context.Context, d deployment, o *outcome, common float64) error {
			return b.measureRates(ctx, d, o, c.subs, common)
		})
	names := [2]string{wshub.name, refhub.name + " (goroutine/conn)"}
	return table{key: "refhub", title: "wshub vs the goroutine-per-connection reference hub", names: names, ratio: "wshub / refhub", metrics: metrics(c.conns, c.subs, c.size), rounds: rounds,
		notes: describe(c) + "\n\n" + rateNotes(names, rounds)}, err
}

// redisTable: fan-out across instances on Redis (subscribers split over
// two wshub instances, the publisher on a third) against the same
// subscribers on one wshub with the in-memory broker.
func (b *bencher) redisTable(ctx context.Context, wshub serverSpec) (table, error) {
	c := b.c
	sides := [2]deployment{
		{key: "wshub-redis", spec: wshub, subInsts: 2, pubApart: true, redis: true},
		single(wshub),
	}
	rounds, err := b.compare(ctx, sides,
		func(ctx context.Context, d deployment, o *outcome) error {
			return b.measureMax(ctx, d, o, c.redisSubs, false)
		},
		func(ctx context.Context, d deployment, o *outcome, _ float64) error {
			return b.measureRates(ctx, d, o, c.redisSubs, 0)
		})
	names := [2]string{"2 wshub on Redis (+1 for the publisher)", "1 wshub in memory"}
	return table{key: "redis", title: "fan-out across instances on Redis vs one instance in memory", names: names, ratio: "Redis / memory", metrics: redisMetrics(c.redisSubs, c.size), rounds: rounds,
		notes: describeRedis(c) + "\n\n" + rateNotes(names, rounds) + redisNotes(rounds)}, err
}

// compare runs two deployments round after round, alternating which goes
// first: pass 1 on each, then pass 2 on each that has a max-rate result,
// given the common rate (half the slower max) when both have one.
func (b *bencher) compare(ctx context.Context, sides [2]deployment,
	pass1 func(context.Context, deployment, *outcome) error,
	pass2 func(context.Context, deployment, *outcome, float64) error) ([][2]outcome, error) {
	rounds := make([][2]outcome, 0, b.c.rounds)
	for r := 0; r < b.c.rounds; r++ {
		var res [2]outcome
		order := []int{0, 1}
		if r%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			fmt.Fprintf(b.stderr, "round %d: %s\n", r+1, sides[i].key)
			if err := pass1(ctx, sides[i], &res[i]); err != nil {
				if err := b.fail(r, sides[i].key, err); err != nil {
					return rounds, err
				}
			}
		}
		common := 0.0
		if res[0].Max != nil && res[1].Max != nil {
			common = min(res[0].Max.PublishesPerS, res[1].Max.PublishesPerS) / 2
		}
		for _, i := range order {
			if res[i].Max == nil {
				continue
			}
			if err := pass2(ctx, sides[i], &res[i], common); err != nil {
				if err := b.fail(r, sides[i].key, err); err != nil {
					return rounds, err
				}
			}
		}
		rounds = append(rounds, res)
	}
	return rounds, nil
}

func fanoutArgs(c *config, subs int) []string {
	return []string{"fanout", "--subs", fmt.Sprint(subs), "--channels", fmt.Sprint(c.channels),
		"--publishers", fmt.Sprint(c.publishers), "--size", fmt.Sprint(c.size), "--duration", c.duration.String()}
}

// measureMax runs idle (when asked) and fanout at max rate.
func (b *bencher) measureMax(ctx context.Context, d deployment, o *outcome, subs int, idle bool) error {
	c := b.c
	var err error
	if idle {
		if o.Idle, err = b.runOn(ctx, d, "idle", o, "idle", "--conns", fmt.Sprint(c.conns),
			"--channels", fmt.Sprint(c.idleChannels), "--duration", c.hold.String()); err != nil {
			return err
		}
	}
	o.Max, err = b.runOn(ctx, d, "max", o, append(fanoutArgs(c, subs), "--rate", "0", "--window", fmt.Sprint(c.window))...)
	return err
}

// measureRates runs fanout at half the deployment's own max rate and, when
// common is set, at that common rate (reusing the first when they are the
// same).
func (b *bencher) measureRates(ctx context.Context, d deployment, o *outcome, subs int, common float64) error {
	half := o.Max.PublishesPerS / 2
	if half < 1 {
		return fmt.Errorf("max-rate run published %.1f/s: nothing to halve", o.Max.PublishesPerS)
	}
	var err error
	if o.Half, err = b.runOn(ctx, d, "half", o, append(fanoutArgs(b.c, subs), "--rate", fmt.Sprintf("%.0f", half))...); err != nil {
		return err
	}
	switch {
	case common < 1:
	case fmt.Sprintf("%.0f", common) == fmt.Sprintf("%.0f", half):
		o.Common = o.Half
	default:
		o.Common, err = b.runOn(ctx, d, "common", o, append(fanoutArgs(b.c, subs), "--rate", fmt.Sprintf("%.0f", common))...)
	}
	return err
}
