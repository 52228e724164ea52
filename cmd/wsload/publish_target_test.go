package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wshub/wshub/bench/refhub"
	"github.com/wshub/wshub/loadtest"
	"github.com/wshub/wshub/loadtest/testserver"
)

// joined starts n listeners in front of one reference hub: n "instances"
// that share their subscriptions as gateways on one broker do.
func joined(t *testing.T, n int) []*testserver.Instance {
	t.Helper()
	h := refhub.New()
	go h.Run()
	t.Cleanup(h.Stop)
	out := make([]*testserver.Instance, n)
	for i := range out {
		out[i] = testserver.StartInstance(h.Handler())
		t.Cleanup(out[i].Stop)
	}
	return out
}

func readResult(t *testing.T, path string) *loadtest.Result {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r loadtest.Result
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// TestPublishTargetFlag: subscribers on A, the publisher on B; every
// publication still reaches every subscriber and the result says where
// the publisher was.
func TestPublishTargetFlag(t *testing.T) {
	in := joined(t, 2)
	a, b := in[0], in[1]
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	var out, errb bytes.Buffer
	code := run([]string{"fanout", "--target", a.Addr, "--publish-target", b.Addr, "--subs", "12", "--channels", "3",
		"--publishers", "1", "--msgs", "150", "--duration", "10s", "--drain", "2s", "--quiet",
		"--json", jsonPath, "--max-loss", "0", "--max-errors", "0"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	if a.Conns() != 12 || b.Conns() != 1 {
		t.Fatalf("connections on A %d, on B %d, want 12 and 1", a.Conns(), b.Conns())
	}
	r := readResult(t, jsonPath)
	if len(r.PublishTargets) != 1 || r.PublishTargets[0] != b.Addr || len(r.Targets) != 1 || r.Targets[0] != a.Addr {
		t.Errorf("targets %v, publish targets %v", r.Targets, r.PublishTargets)
	}
	// 150 publications over 3 channels with 4 subscribers each.
	if r.Published != 150 || r.Expected != 600 || r.Delivered != 600 {
		t.Fatalf("published %d expected %d delivered %d, want 150/600/600", r.Published, r.Expected, r.Delivered)
	}
	if !strings.Contains(out.String(), "publishers on "+b.Addr) {
		t.Errorf("summary does not say where the publishers were:\n%s", out.String())
	}
}

// TestPublishTargetsAcrossWorkers: with --procs 2 each worker's publisher
// takes its own publish target (publishers are numbered across workers).
func TestPublishTargetsAcrossWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildWsload(t)
	in := joined(t, 4)
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	cmd := exec.Command(bin, "fanout", "--procs", "2", "--target", in[0].Addr+","+in[1].Addr,
		"--publish-target", in[2].Addr, "--publish-target", in[3].Addr,
		"--subs", "20", "--channels", "2", "--publishers", "2", "--msgs", "200", "--duration", "20s",
		"--drain", "2s", "--json", jsonPath, "--max-loss", "0", "--max-errors", "0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("wsload --procs 2: %v\n%s", err, out)
	}
	got := [4]int64{in[0].Conns(), in[1].Conns(), in[2].Conns(), in[3].Conns()}
	if got != [4]int64{10, 10, 1, 1} {
		t.Fatalf("connections per instance %v, want [10 10 1 1]", got)
	}
	r := readResult(t, jsonPath)
	if r.Procs != 2 || r.Published != 200 || r.Expected != 2000 || r.Delivered != 2000 || r.Lost+r.Duplicates+r.Reordered != 0 {
		t.Fatalf("merged result %+v", r)
	}
}
