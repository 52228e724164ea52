package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/wshub/wshub/loadtest"
)

// deployment is one side of a comparison. Every run gets fresh processes,
// so RSS baselines and CPU are that run's own: subInsts instances of spec
// holding the subscribers, one more for the publishers when pubApart, all
// on a fresh redis-server when redis.
type deployment struct {
	key      string // file-name-safe tag for result files
	spec     serverSpec
	subInsts int
	pubApart bool
	redis    bool
}

// single is one instance of spec holding everyone.
func single(spec serverSpec) deployment {
	return deployment{key: spec.name, spec: spec, subInsts: 1}
}

// running is a deployment's processes during one run.
type running struct {
	redis   *redisProc
	servers []*server
}

func (d deployment) start(ctx context.Context, workDir string, stderr io.Writer) (*running, error) {
	rn := &running{}
	spec := d.spec
	if d.redis {
		r, err := startRedis(ctx, workDir)
		if err != nil {
			return nil, err
		}
		rn.redis = r
		spec.args = append(append([]string{}, spec.args...), "--redis", r.url())
	}
	n := d.subInsts
	if d.pubApart {
		n++
	}
	for i := 0; i < n; i++ {
		s, err := startServer(ctx, spec, workDir, stderr)
		if err != nil {
			rn.stop()
			return nil, err
		}
		rn.servers = append(rn.servers, s)
	}
	return rn, nil
}

// stop ends the gateways, then Redis.
func (rn *running) stop() {
	for _, s := range rn.servers {
		s.stop()
	}
	if rn.redis != nil {
		rn.redis.stop()
	}
}

// wsloadArgs points wsload at the instances and gives it every gateway's
// pid (not Redis's: the gateways' CPU is what is summed per delivery).
func (rn *running) wsloadArgs(d deployment) []string {
	var args []string
	for i, s := range rn.servers {
		if d.pubApart && i == len(rn.servers)-1 {
			args = append(args, "--publish-target", s.addr)
		} else {
			args = append(args, "--target", s.addr)
		}
		args = append(args, "--server-pid", fmt.Sprint(s.pid()))
	}
	return args
}

// bencher runs wsload scenarios against deployments.
type bencher struct {
	c        *config
	wsload   string
	stderr   io.Writer
	firstErr error // the first failure tolerated under --keep-going
}

// runOn runs one wsload scenario (extra: its arguments, scenario first)
// against fresh processes of d and, when d has Redis, records Redis's
// CPU over the run in o.
func (b *bencher) runOn(ctx context.Context, d deployment, label string, o *outcome, extra ...string) (*resultT, error) {
	rn, err := d.start(ctx, b.c.workDir, b.stderr)
	if err != nil {
		return nil, err
	}
	defer rn.stop()
	// The scenario comes first: flag parsing stops at the first argument.
	args := append(append(append([]string{}, extra...), rn.wsloadArgs(d)...), "--procs", fmt.Sprint(b.c.procs))
	fmt.Fprintf(b.stderr, "  %s: wsload %v\n", label, args)
	var before loadtest.ProcSample
	if rn.redis != nil {
		before, _ = loadtest.ReadProc(rn.redis.pid())
	}
	res, err := runWsload(ctx, b.wsload, args, filepath.Join(b.c.workDir, d.key+"-"+label+".json"), b.stderr)
	if err == nil && rn.redis != nil {
		if after, e := loadtest.ReadProc(rn.redis.pid()); e == nil {
			if o.RedisCPU == nil {
				o.RedisCPU = map[string]redisCPU{}
			}
			o.RedisCPU[label] = redisCPU{Seconds: after.CPUSec - before.CPUSec, Wall: after.At.Sub(before.At).Seconds()}
		}
	}
	return res, err
}

// fail reports a failed run: fatal, or noted under --keep-going.
func (b *bencher) fail(round int, name string, err error) error {
	err = fmt.Errorf("round %d, %s: %w", round+1, name, err)
	if !b.c.keepGoing {
		return err
	}
	fmt.Fprintln(b.stderr, "bench-e2e:", err)
	if b.firstErr == nil {
		b.firstErr = err
	}
	return nil
}
