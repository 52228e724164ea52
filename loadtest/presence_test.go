package loadtest

import (
	"testing"
	"time"

	"github.com/wshub/wshub/loadtest/testserver"
)

const presenceSecret = "presence-test-secret-of-32-bytes"

// startPresence serves a testserver.Presence with the given linger.
func startPresence(t *testing.T, linger time.Duration) *testserver.Instance {
	t.Helper()
	s, err := testserver.NewPresence(presenceSecret, linger)
	if err != nil {
		t.Fatal(err)
	}
	in := testserver.StartInstance(s)
	t.Cleanup(in.Stop)
	return in
}

// presenceCfg is a short presence-churn run: 40 members of 20 users over 2
// channels, 2 watchers each, 20 churns/s for 1.5 s.
func presenceCfg(addr string, linger, awayMin, awayMax time.Duration) Config {
	return Config{
		Scenario: ScenarioPresence, Targets: []string{addr}, Pollers: 2, Conns: 40, Users: 20, Channels: 2, Watchers: 4,
		ChurnRate: 20, Linger: linger, AwayMin: awayMin, AwayMax: awayMax, QueryRate: 50,
		Duration: 1500 * time.Millisecond, JWTSecret: presenceSecret, JWTChannels: []string{"*"},
	}
}

// checkCounts asserts what every presence-churn run must end with: every
// drop came back and was judged, the counts settled before and after, and
// every query was answered within the counts at rest.
func checkCounts(t *testing.T, res *Result) *PresenceResult {
	t.Helper()
	p := res.Presence
	if p == nil || p.Accounting == nil {
		t.Fatalf("no presence figures: %+v", res)
	}
	a := p.Accounting
	t.Logf("drops %d skipped %d, accounting %+v, queries %+v, settle %v/%v ms, stats %v", p.Drops, p.Skipped, *a, p.Queries, p.SettleStartMs, p.SettleEndMs, p.Stats)
	if p.Drops < 10 || a.Churns != p.Drops || a.Unfinished != 0 || a.Stray != 0 {
		t.Errorf("drops %d, churns judged %d, unfinished %d, stray %d", p.Drops, a.Churns, a.Unfinished, a.Stray)
	}
	// 20 members and 2 watchers per channel; 10 users each (user i % 20
	// on channel i % 2) and the watchers' own.
	for ch := range 2 {
		if p.ExpConns[ch] != 22 || p.ExpUsers[ch] != 12 || p.Queries.LastConns[ch] != 22 || p.Queries.LastUsers[ch] != 12 {
			t.Errorf("channel %d: expected %d/%d, last answered %d/%d", ch, p.ExpConns[ch], p.ExpUsers[ch], p.Queries.LastConns[ch], p.Queries.LastUsers[ch])
		}
	}
	if p.SettleStartMs < 0 || p.SettleEndMs < 0 || p.Queries.Implausible != 0 || p.Queries.Unanswered != 0 || len(p.Queries.Errors) != 0 {
		t.Errorf("settle %v/%v, queries %+v", p.SettleStartMs, p.SettleEndMs, p.Queries)
	}
	if p.Stats.Count == 0 || p.List.Count == 0 || p.Queries.MembersMax != 22 {
		t.Errorf("stats %+v presence %+v members max %d", p.Stats, p.List, p.Queries.MembersMax)
	}
	if res.Errors != 0 {
		t.Errorf("errors %v", res.ErrorsByKind)
	}
	return p
}

// TestPresenceFastReconnectsSuppressed: away well within the linger, no
// churn may cause a push.
func TestPresenceFastReconnectsSuppressed(t *testing.T) {
	in := startPresence(t, time.Second)
	p := checkCounts(t, runLocal(t, presenceCfg(in.Addr, time.Second, 20*time.Millisecond, 200*time.Millisecond)))
	if a := p.Accounting; a.Suppressed != a.Churns || a.Leaked != 0 || a.Pushes != 0 {
		t.Fatalf("every churn should be suppressed: %+v", *a)
	}
}

// TestPresenceLongAwayAnnounced: away longer than the linger, each churn
// is one leave then one join at every watcher of its channel.
func TestPresenceLongAwayAnnounced(t *testing.T) {
	in := startPresence(t, 100*time.Millisecond)
	p := checkCounts(t, runLocal(t, presenceCfg(in.Addr, 100*time.Millisecond, 400*time.Millisecond, 600*time.Millisecond)))
	if a := p.Accounting; a.Announced != a.Churns || a.Wrong != 0 || a.PushesPerChurn != 2 {
		t.Fatalf("every churn should be announced: %+v", *a)
	}
}

// TestPresenceLeaksCounted: a server without the linger wsload expects
// sends a leave and a join for every fast reconnect: each is a leak.
func TestPresenceLeaksCounted(t *testing.T) {
	in := startPresence(t, 0)
	p := checkCounts(t, runLocal(t, presenceCfg(in.Addr, time.Second, 20*time.Millisecond, 200*time.Millisecond)))
	if a := p.Accounting; a.Leaked != a.Churns || a.Suppressed != 0 || a.LeakedPushes != 2*2*a.Churns {
		t.Fatalf("every churn should leak a leave and a join to both watchers: %+v", *a)
	}
}
