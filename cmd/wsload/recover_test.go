package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wshub/wshub/loadtest"
	"github.com/wshub/wshub/loadtest/testserver"
)

func TestRecoverFlags(t *testing.T) {
	o, err := parseFlags([]string{"recover", "--conns", "10", "--rate", "5", "--away", "50ms-1s", "--disconnect-rate", "3"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.Scenario != loadtest.ScenarioRecover || c.AwayMin != 50*time.Millisecond || c.AwayMax != time.Second || c.DisconnectRate != 3 {
		t.Fatalf("config %+v", c)
	}
	if o, err = parseFlags([]string{"recover", "--conns", "1", "--rate", "1", "--away", "300ms"}, &bytes.Buffer{}); err != nil || o.cfg.AwayMin != o.cfg.AwayMax || o.cfg.AwayMax != 300*time.Millisecond {
		t.Fatalf("--away 300ms: %v %v-%v", err, o.cfg.AwayMin, o.cfg.AwayMax)
	}
	for _, args := range [][]string{
		{"recover", "--conns", "10", "--rate", "5", "--away", "2s-1s"},
		{"recover", "--conns", "10", "--rate", "5", "--away", "soon"},
		{"recover", "--conns", "10"}, // no rate
		{"recover", "--conns", "10", "--rate", "5", "--namespace", "a:b"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 || errb.Len() == 0 {
			t.Errorf("%v: exit %d (stderr %q), want 2 with a message", args, code, errb.String())
		}
	}
}

// TestRecoverSummaryAndJSON: a recover run against a history server says
// how its reconnects were answered, in the summary and in the JSON.
func TestRecoverSummaryAndJSON(t *testing.T) {
	in := testserver.StartInstance(testserver.NewHistory(100000, testserver.ReplayExact))
	defer in.Stop()
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	var out, errb bytes.Buffer
	args := []string{"recover", "--target", in.Addr, "--conns", "20", "--channels", "2", "--publishers", "2", "--rate", "200",
		"--duration", "1s", "--disconnect-rate", "20", "--away", "20ms-200ms", "--quiet", "--json", jsonPath, "--max-loss", "0", "--max-errors", "0"}
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	t.Log(out.String())
	for _, want := range []string{"  lost/dup/ooo   0 lost, 0 duplicates, 0 out of order\n", "  reconnects     ", "  recovery ok    p50 ", "  caught up      p50 "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	var res struct {
		Expected, Delivered int64
		Recover             map[string]any
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res.Expected == 0 || res.Delivered != res.Expected || res.Recover["disconnects"].(float64) == 0 || res.Recover["recoveries"] != res.Recover["disconnects"] {
		t.Fatalf("JSON %s", b)
	}
	for _, k := range []string{"not_recovered", "unrecovered", "replayed", "away_at_end", "ok_us", "caught_up_us"} {
		if _, ok := res.Recover[k]; !ok {
			t.Errorf("recover JSON lacks %q", k)
		}
	}
}

// TestRecoverAcrossWorkers: with --procs 2 each channel's publisher is in
// one process and most of its subscribers in the other; the merged account
// is still exact.
func TestRecoverAcrossWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildWsload(t)
	in := testserver.StartInstance(testserver.NewHistory(100000, testserver.ReplayExact))
	defer in.Stop()
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	cmd := exec.Command(bin, "recover", "--procs", "2", "--target", in.Addr, "--conns", "30", "--channels", "3", "--publishers", "3",
		"--rate", "150", "--duration", "1s", "--disconnect-rate", "20", "--away", "20ms-200ms", "--json", jsonPath, "--max-loss", "0", "--max-errors", "0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("wsload recover --procs 2: %v\n%s", err, out)
	}
	var res struct {
		Procs                          int
		Published, Expected, Delivered int64
		Recover                        loadtest.RecoverResult
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	// 10 subscribers per channel, each due every publication on it.
	if res.Procs != 2 || res.Recover.Subs != 30 || res.Expected != 10*res.Published || res.Delivered != res.Expected || res.Recover.Recoveries != res.Recover.Disconnects || res.Recover.Disconnects == 0 {
		t.Fatalf("merged %+v\n%s", res, out)
	}
}

// TestRecoverRoundsFlags: --missed excludes the random drops' settings,
// --rounds needs --missed, and a rate too slow for --duration is refused.
func TestRecoverRoundsFlags(t *testing.T) {
	o, err := parseFlags([]string{"recover", "--conns", "10", "--missed", "100", "--rounds", "3"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c := o.cfg; c.Missed != 100 || c.Rounds != 3 || c.DisconnectRate != 0 || c.AwayMax != 0 {
		t.Fatalf("config %+v", c)
	}
	for _, args := range [][]string{
		{"recover", "--conns", "10", "--missed", "100", "--disconnect-rate", "5"},
		{"recover", "--conns", "10", "--missed", "100", "--away", "1s"},
		{"recover", "--conns", "10", "--rate", "5", "--rounds", "2"},
		{"recover", "--conns", "10", "--missed", "100", "--channels", "10", "--rate", "50", "--duration", "10s"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 || errb.Len() == 0 {
			t.Errorf("%v: exit %d (stderr %q), want 2 with a message", args, code, errb.String())
		}
	}
}

// TestRecoverRoundsSummaryAndJSON: recover --missed against a history
// server in this process (so --server-pid is this one) gives each
// round's figures, their median and the gateway's CPU for each.
func TestRecoverRoundsSummaryAndJSON(t *testing.T) {
	in := testserver.StartInstance(testserver.NewHistory(100000, testserver.ReplayExact))
	defer in.Stop()
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	var out, errb bytes.Buffer
	args := []string{"recover", "--target", in.Addr, "--conns", "50", "--channels", "2", "--missed", "1000", "--rounds", "2",
		"--server-pid", strconv.Itoa(os.Getpid()), "--quiet", "--json", jsonPath, "--max-loss", "0", "--max-errors", "0"}
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	t.Log(out.String())
	for _, want := range []string{"  round 1        50 subscribers, 2000 missed: 50 caught up, 0 not recovered, 0 unsettled; 50000 replayed\n",
		"  round 2        ", "    all settled  in ", " µs/replayed)", "    catch-up     p50 ", "  rounds median  all settled in "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	var res struct{ Recover loadtest.RecoverResult }
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	s := res.Recover
	if len(s.Rounds) != 2 || s.RoundMedian == nil || s.RoundMedian.GatewayCPUS <= 0 {
		t.Fatalf("JSON %s", b)
	}
	for i, r := range s.Rounds {
		if r.GatewayCPUS <= 0 || r.GatewayPerReplayUs != math.Round(r.GatewayCPUS*1e9/float64(r.Replayed))/1000 || r.CatchUp.Count != 50 {
			t.Fatalf("round %d: %+v", i+1, r)
		}
	}
}
