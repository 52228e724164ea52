package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wshub/wshub/loadtest"
	"github.com/wshub/wshub/loadtest/testserver"
)

const presenceSecret = "presence-test-secret-of-32-bytes"

func TestPresenceFlags(t *testing.T) {
	o, err := parseFlags([]string{"presence-churn", "--conns", "10", "--users", "4", "--channels", "2", "--watchers", "3",
		"--churn-rate", "5", "--linger", "3s", "--away", "100ms-1s", "--query-rate", "20", "--jwt-secret", presenceSecret}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.Scenario != loadtest.ScenarioPresence || c.Users != 4 || c.Watchers != 3 || c.ChurnRate != 5 || c.Linger != 3*time.Second ||
		c.AwayMin != 100*time.Millisecond || c.AwayMax != time.Second || c.QueryRate != 20 || c.Namespace != loadtest.DefaultPresenceNamespace {
		t.Fatalf("config %+v", c)
	}
	for _, args := range [][]string{
		{"presence-churn", "--conns", "10"}, // no --jwt-secret
		{"presence-churn", "--conns", "10", "--jwt-secret", presenceSecret, "--users", "11"},
		{"presence-churn", "--conns", "10", "--jwt-secret", presenceSecret, "--channels", "3", "--watchers", "2"},
		{"presence-churn", "--conns", "10", "--jwt-secret", presenceSecret, "--linger", "2m"},
		{"presence-churn", "--conns", "10", "--jwt-secret", presenceSecret, "--procs", "2"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 || errb.Len() == 0 {
			t.Errorf("%v: exit %d (stderr %q), want 2 with a message", args, code, errb.String())
		}
	}
}

// TestPresenceSummaryAndJSON: a presence-churn run against the test server
// ends by itself and says how its churns were heard, in the summary and in
// the JSON.
func TestPresenceSummaryAndJSON(t *testing.T) {
	s, err := testserver.NewPresence(presenceSecret, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	in := testserver.StartInstance(s)
	defer in.Stop()
	jsonPath := filepath.Join(t.TempDir(), "p.json")
	var out, errb bytes.Buffer
	args := []string{"presence-churn", "--target", in.Addr, "--conns", "30", "--users", "10", "--channels", "3", "--churn-rate", "20",
		"--linger", "500ms", "--away", "20ms-100ms", "--duration", "1s", "--query-rate", "30", "--jwt-secret", presenceSecret,
		"--quiet", "--json", jsonPath, "--max-errors", "0"}
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	t.Log(out.String())
	for _, want := range []string{"  suppressed     ", " 0 leaked (0 pushes)\n", "  stats          p50 ", "  settled        in "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	r := readResult(t, jsonPath)
	p := r.Presence
	if p == nil || p.Accounting == nil || p.Drops == 0 || p.Accounting.Suppressed != p.Drops || p.SettleEndMs < 0 || p.Queries.LastConns[0] != 11 || p.Queries.LastUsers[0] != 11 {
		t.Fatalf("presence %+v", p)
	}
}
