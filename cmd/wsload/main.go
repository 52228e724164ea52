// Command wsload is wshub's load generator: thousands of WebSocket clients
// on a few epoll goroutines per process, speaking PROTOCOL.md, with exact
// loss/duplicate/reordering accounting and latency percentiles.
//
// Exit status: 0 success, 1 a --max-loss or --max-errors threshold was
// passed, 2 bad usage, 3 the run itself failed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/wshub/wshub/loadtest"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process exit, so tests can call it.
func run(args []string, stdout, stderr io.Writer) int {
	raiseNoFile()
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "wsload:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if o.workerCount > 0 {
		return runWorker(ctx, o, os.Stdin, stdout)
	}
	if o.cfg.Conns+o.cfg.Subs > 19900*o.procs {
		fmt.Fprintf(stderr, "wsload: warning: %d connections over %d process(es); each process can hold about 19,900 sockets here (use --procs)\n", o.cfg.Conns+o.cfg.Subs, o.procs)
	}
	if o.cpuProf != "" {
		f, err := os.Create(o.cpuProf)
		if err != nil {
			fmt.Fprintln(stderr, "wsload:", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "wsload:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	disp := newDisplay(stderr, o.quiet)
	sampler := newServerSampler(o.serverPIDs, stderr)
	sampler.sample("before")
	var raw *loadtest.Raw
	if o.procs == 1 {
		coord := &loadtest.Local{OnBarrier: sampler.sample, OnProgress: func(p loadtest.Progress) { disp.update([]loadtest.Progress{p}) }}
		raw, err = loadtest.Run(ctx, o.cfg, coord)
	} else {
		raw, err = runParent(ctx, o, args, disp, sampler, stderr)
	}
	disp.finish()
	if err != nil {
		fmt.Fprintln(stderr, "wsload:", err)
		return 3
	}
	res := loadtest.Finalize(raw)
	res.Targets, res.PublishTargets = o.cfg.Targets, o.cfg.PublishTargets
	if b, r, d, ok := sampler.phases(); ok {
		res.AddServer(o.serverPIDs, b, r, d)
		res.AddRoundServer(sampler.at)
	}
	printSummary(stdout, res, &o.cfg)
	if o.jsonFile != "" {
		if err := writeJSON(o.jsonFile, res, stdout); err != nil {
			fmt.Fprintln(stderr, "wsload:", err)
			return 3
		}
	}
	return verdict(res, o, stderr)
}

// verdict applies --max-loss and --max-errors.
func verdict(res *loadtest.Result, o *options, stderr io.Writer) int {
	code := 0
	if o.maxLoss >= 0 && res.LossRatio > o.maxLoss {
		fmt.Fprintf(stderr, "wsload: FAIL: loss %.4f%% (%d of %d) exceeds --max-loss %.4f%%\n", 100*res.LossRatio, res.Lost, res.Expected, 100*o.maxLoss)
		code = 1
	}
	if o.maxErrors >= 0 && res.Errors > o.maxErrors {
		fmt.Fprintf(stderr, "wsload: FAIL: %d errors exceed --max-errors %d %v\n", res.Errors, o.maxErrors, res.ErrorsByKind)
		code = 1
	}
	return code
}

func writeJSON(path string, res *loadtest.Result, stdout io.Writer) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// raiseNoFile lifts the open-file soft limit to the hard limit: every
// connection is a file descriptor.
func raiseNoFile() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
