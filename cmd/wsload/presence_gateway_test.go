package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestPresenceAgainstTheGateway: presence-churn against the real gateway
// with join_leave and a 3 s linger: reconnects within it must be silent to
// the watchers, and the counts must settle to every member and user.
func TestPresenceAgainstTheGateway(t *testing.T) {
	gw := buildGateway(t)
	dir := t.TempDir()
	conf := writeGatewayConfig(t, dir, "namespaces: {pres: {presence: true, join_leave: true, join_leave_linger: 3s, presence_for: anyone}}\n")
	if out, err := exec.Command(gw, "config", "check", conf).CombinedOutput(); err != nil {
		t.Fatalf("the gateway refuses the presence namespace: %v\n%s", err, out)
	}
	const secret = "presence-gateway-test-secret-32b"
	addr, _ := startGateway(t, gw, "--loops", "2", "--config", conf, "--jwt-secret", secret)
	jsonPath := filepath.Join(dir, "p.json")
	var out, errb bytes.Buffer
	code := run([]string{"presence-churn", "--target", addr, "--jwt-secret", secret, "--jwt-channels", "*",
		"--conns", "200", "--users", "100", "--channels", "2", "--churn-rate", "30", "--away", "50ms-500ms", "--linger", "3s",
		"--duration", "3s", "--query-rate", "30", "--quiet", "--json", jsonPath, "--max-errors", "0"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	r := readResult(t, jsonPath)
	p := r.Presence
	if p == nil || p.Accounting == nil {
		t.Fatalf("no presence figures\n%s", out.String())
	}
	a := p.Accounting
	if p.Drops < 30 || a.Churns != p.Drops || a.Suppressed != a.Churns || a.Leaked != 0 || a.Stray != 0 || p.SettleStartMs < 0 || p.SettleEndMs < 0 || p.Queries.Implausible != 0 {
		t.Fatalf("presence %+v, accounting %+v\n%s", p, *a, out.String())
	}
	// 100 members and a watcher per channel; 50 users (user i % 100 on
	// channel i % 2) and the watcher's own.
	for ch := range 2 {
		if p.Queries.LastConns[ch] != 101 || p.Queries.LastUsers[ch] != 51 {
			t.Fatalf("channel %d last answered %d conns, %d users\n%s", ch, p.Queries.LastConns[ch], p.Queries.LastUsers[ch], out.String())
		}
	}
	t.Logf("%d churns suppressed; stats p50 %d µs", a.Suppressed, p.Stats.P50)
}
