// Command e2e is `make bench-e2e`: it builds wshub, the reference hub
// (bench/refhub: goroutine per connection, gorilla/websocket) and wsload,
// runs the same idle and fanout scenarios against each server, alternating
// which goes first in each round, and prints a side-by-side Markdown table
// with ratios (wshub / reference).
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
	if err := fs.Parse(args); err != nil {
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
	servers := [2]serverSpec{
		{name: "wshub", bin: filepath.Join(bins, "wshub")},
		{name: "refhub", bin: filepath.Join(bins, "refhub")},
	}
	wsload := filepath.Join(bins, "wsload")
	rounds := make([][2]outcome, 0, c.rounds)
	var firstErr error
	fail := func(r int, name string, err error) error {
		err = fmt.Errorf("round %d, %s: %w", r+1, name, err)
		if c.keepGoing {
			fmt.Fprintln(stderr, "bench-e2e:", err)
			if firstErr == nil {
				firstErr = err
			}
			return nil
		}
		return err
	}
	for r := 0; r < c.rounds; r++ {
		var res [2]outcome
		order := []int{0, 1}
		if r%2 == 1 {
			order = []int{1, 0}
		}
		// Pass 1: idle and max rate on each server; pass 2: half of each
		// one's own max, and both at the same rate (half the slower max).
		for _, i := range order {
			fmt.Fprintf(stderr, "round %d: %s\n", r+1, servers[i].name)
			if err := measureMax(ctx, c, servers[i], wsload, &res[i], stderr); err != nil {
				if err := fail(r, servers[i].name, err); err != nil {
					return err
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
			if err := measureRates(ctx, c, servers[i], wsload, &res[i], common, stderr); err != nil {
				if err := fail(r, servers[i].name, err); err != nil {
					return err
				}
			}
		}
		rounds = append(rounds, res)
	}
	ms := metrics(c.conns, c.subs, c.size)
	names := [2]string{servers[0].name, servers[1].name + " (goroutine/conn)"}
	fmt.Fprintln(stdout)
	printTable(stdout, ms, names, rounds)
	fmt.Fprintf(stdout, "\n%s\n%s", describe(c), rateNotes(names, rounds))
	if c.mdOut != "" {
		f, err := os.Create(c.mdOut)
		if err != nil {
			return err
		}
		printTable(f, ms, names, rounds)
		fmt.Fprintf(f, "\n%s\n%s", describe(c), rateNotes(names, rounds))
		f.Close()
	}
	if c.jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"servers": names, "rounds": rounds}, "", "  ")
		if err := os.WriteFile(c.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return firstErr
}

// runner runs one wsload scenario against a fresh instance of a server,
// so RSS baselines and CPU are that run's own.
func runOn(ctx context.Context, c *config, s serverSpec, wsload, label string, stderr io.Writer, extra ...string) (*resultT, error) {
	srv, err := startServer(ctx, s, c.workDir, stderr)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	// The scenario comes first: flag parsing stops at the first argument.
	args := append(extra, "--target", srv.addr, "--server-pid", fmt.Sprint(srv.pid()), "--procs", fmt.Sprint(c.procs))
	fmt.Fprintf(stderr, "  %s: wsload %v\n", label, args)
	return runWsload(ctx, wsload, args, filepath.Join(c.workDir, s.name+"-"+label+".json"), stderr)
}

func fanoutArgs(c *config) []string {
	return []string{"fanout", "--subs", fmt.Sprint(c.subs), "--channels", fmt.Sprint(c.channels),
		"--publishers", fmt.Sprint(c.publishers), "--size", fmt.Sprint(c.size), "--duration", c.duration.String()}
}

// measureMax runs idle and fanout at max rate.
func measureMax(ctx context.Context, c *config, s serverSpec, wsload string, o *outcome, stderr io.Writer) error {
	var err error
	if o.Idle, err = runOn(ctx, c, s, wsload, "idle", stderr, "idle", "--conns", fmt.Sprint(c.conns),
		"--channels", fmt.Sprint(c.idleChannels), "--duration", c.hold.String()); err != nil {
		return err
	}
	o.Max, err = runOn(ctx, c, s, wsload, "max", stderr, append(fanoutArgs(c), "--rate", "0", "--window", fmt.Sprint(c.window))...)
	return err
}

// measureRates runs fanout at half the server's own max rate and at the
// common rate (reusing the first when they are the same).
func measureRates(ctx context.Context, c *config, s serverSpec, wsload string, o *outcome, common float64, stderr io.Writer) error {
	half := o.Max.PublishesPerS / 2
	if half < 1 {
		return fmt.Errorf("max-rate run published %.1f/s: nothing to halve", o.Max.PublishesPerS)
	}
	var err error
	if o.Half, err = runOn(ctx, c, s, wsload, "half", stderr, append(fanoutArgs(c), "--rate", fmt.Sprintf("%.0f", half))...); err != nil {
		return err
	}
	switch {
	case common < 1:
	case fmt.Sprintf("%.0f", common) == fmt.Sprintf("%.0f", half):
		o.Common = o.Half
	default:
		o.Common, err = runOn(ctx, c, s, wsload, "common", stderr, append(fanoutArgs(c), "--rate", fmt.Sprintf("%.0f", common))...)
	}
	return err
}
