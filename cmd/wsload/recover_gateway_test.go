package main

import (
	"bytes"
	"path/filepath"
	"testing"
)

// TestRecoverAgainstTheGateway: the recover scenario against the real
// gateway with history: subscribers dropped at random during a steady
// publish, back with since, must see every offset exactly once, in order.
func TestRecoverAgainstTheGateway(t *testing.T) {
	gw := buildGateway(t)
	dir := t.TempDir()
	conf := writeGatewayConfig(t, dir, "namespaces: {hist: {history_size: 1000, history_ttl: 10m}}\n")
	addr, _ := startGateway(t, gw, "--loops", "2", "--config", conf)
	jsonPath := filepath.Join(dir, "r.json")
	var out, errb bytes.Buffer
	code := run([]string{"recover", "--target", addr, "--conns", "200", "--channels", "4", "--publishers", "2",
		"--rate", "400", "--duration", "3s", "--away", "50ms-500ms", "--disconnect-rate", "100",
		"--quiet", "--json", jsonPath, "--max-loss", "0", "--max-errors", "0"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	r := readResult(t, jsonPath)
	rc := r.Recover
	if rc == nil || r.Lost != 0 || r.Duplicates != 0 || r.Reordered != 0 || rc.Recoveries == 0 || rc.NotRecovered != 0 {
		t.Fatalf("lost %d, duplicates %d, reordered %d, recover %+v\n%s", r.Lost, r.Duplicates, r.Reordered, rc, out.String())
	}
	t.Logf("%d recoveries, %d replayed, %d delivered", rc.Recoveries, rc.Replayed, r.Delivered)
}
