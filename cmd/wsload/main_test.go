package main

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/wshub/wshub/bench/refhub"
	"github.com/wshub/wshub/loadtest/testserver"
)

func TestMaxLossDecidesExitStatus(t *testing.T) {
	addr, stop := testserver.StartMangler(10, 0, 0) // every 10th publication lost
	defer stop()
	base := []string{"fanout", "--target", addr, "--subs", "8", "--channels", "2", "--publishers", "2",
		"--msgs", "200", "--duration", "10s", "--drain", "2s", "--quiet"}
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	var out, errb bytes.Buffer
	// The mangler runs in this process, so this process is the "gateway".
	pid := strconv.Itoa(os.Getpid())
	if code := run(append(base, "--max-loss", "5%", "--json", jsonPath, "--server-pid", pid), &out, &errb); code != 1 {
		t.Fatalf("10%% loss with --max-loss 5%%: exit %d, want 1\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(errb.String(), "exceeds --max-loss") {
		t.Errorf("no explanation on stderr: %q", errb.String())
	}
	var res map[string]any
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"scenario", "expected", "delivered", "lost", "duplicates", "reordered", "deliveries_per_s", "latency_us", "errors"} {
		if _, ok := res[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	srv, _ := res["server"].(map[string]any)
	if srv == nil || srv["rss_ready"].(float64) <= 0 || srv["cpu_s"].(float64) < 0 {
		t.Errorf("server figures %v", res["server"])
	}
	lat, _ := res["latency_us"].(map[string]any)
	for _, k := range []string{"p50", "p90", "p99", "p999", "max"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("latency_us lacks %q", k)
		}
	}
	// 2 channels x 4 subscribers x 100 publications, every 10th dropped.
	if res["expected"] != 800.0 || res["lost"] != 80.0 {
		t.Errorf("expected %v lost %v, want 800 and 80", res["expected"], res["lost"])
	}
	out.Reset()
	errb.Reset()
	if code := run(append(base, "--max-loss", "0.2"), &out, &errb); code != 0 {
		t.Fatalf("10%% loss with --max-loss 0.2: exit %d, want 0\n%s", code, errb.String())
	}
	if !strings.Contains(out.String(), "lost/dup/ooo") {
		t.Errorf("summary missing:\n%s", out.String())
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"nonsense"},
		{"fanout", "--subs", "10", "--channels", "2", "--publishers", "3"},
		{"idle"},
		{"idle", "--conns", "5", "--source-ips", "127.0.0.9-127.0.0.2"},
		{"idle", "--conns", "5", "--max-loss", "150%"},
		{"idle", "--conns", "5", "--publish-target", "127.0.0.1:1"},
		{"fanout", "--subs", "5", "--publish-target", "127.0.0.1:1", "--publish-http", "127.0.0.1:2"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 || errb.Len() == 0 {
			t.Errorf("%v: exit %d (stderr %q), want 2 with a message", args, code, errb.String())
		}
	}
}

func TestExpandIPs(t *testing.T) {
	got, err := expandIPs([]string{"127.0.0.2-127.0.0.4", "127.0.0.9"})
	want := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v %v, want %v", got, err, want)
	}
}

// TestWorkerProcessesMerge runs the real binary with --procs 2 against an
// in-process reference hub: two workers, one merged and exact result.
func TestWorkerProcessesMerge(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildWsload(t)
	h := refhub.New()
	go h.Run()
	s := httptest.NewServer(h.Handler())
	defer func() { s.CloseClientConnections(); s.Close(); h.Stop() }()
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	cmd := exec.Command(bin, "fanout", "--procs", "2", "--target", strings.TrimPrefix(s.URL, "http://"),
		"--subs", "30", "--channels", "3", "--publishers", "3", "--msgs", "300", "--duration", "20s",
		"--drain", "2s", "--json", jsonPath, "--max-loss", "0", "--max-errors", "0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("wsload --procs 2: %v\n%s", err, out)
	}
	var res struct {
		Procs                                     int
		Connected, Expected, Delivered, Published int64
		Lost, Duplicates, Reordered               int64
	}
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	// 30 subscribers + 3 publishers; 300 publications, 10 subscribers per channel.
	if res.Procs != 2 || res.Connected != 33 || res.Published != 300 || res.Expected != 3000 || res.Delivered != 3000 {
		t.Fatalf("merged result %+v\n%s", res, out)
	}
	if res.Lost+res.Duplicates+res.Reordered != 0 {
		t.Fatalf("clean run not clean: %+v", res)
	}
}

// buildWsload compiles this command into the test's temporary directory.
func buildWsload(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wsload")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}
