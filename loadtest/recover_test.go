package loadtest

import (
	"testing"
	"time"

	"github.com/wshub/wshub/loadtest/testserver"
)

// startHistory serves a testserver.History on two listeners, as two
// gateway instances sharing one broker and its history.
func startHistory(t *testing.T, size int, fault testserver.ReplayFault) (*testserver.History, []*testserver.Instance) {
	t.Helper()
	h := testserver.NewHistory(size, fault)
	ins := []*testserver.Instance{testserver.StartInstance(h), testserver.StartInstance(h)}
	t.Cleanup(func() {
		for _, in := range ins {
			in.Stop()
		}
	})
	return h, ins
}

// recoverCfg is a short recover run: 60 subscribers over 3 channels, 300
// publications/s, 40 drops/s, 50-300 ms away.
func recoverCfg(ins []*testserver.Instance) Config {
	var targets []string
	for _, in := range ins {
		targets = append(targets, in.Addr)
	}
	return Config{
		Scenario: ScenarioRecover, Targets: targets, Pollers: 2, Conns: 60, Channels: 3, Publishers: 3,
		Rate: 300, Duration: 1500 * time.Millisecond, DisconnectRate: 40,
		AwayMin: 50 * time.Millisecond, AwayMax: 300 * time.Millisecond, Drain: 3 * time.Second,
	}
}

// TestRecoverAccountsEveryOffset: while history holds every gap, each
// drop comes back recovered and each subscriber gets every offset from
// its first ok to the last exactly once, in order.
func TestRecoverAccountsEveryOffset(t *testing.T) {
	_, ins := startHistory(t, 100000, testserver.ReplayExact)
	res := runLocal(t, recoverCfg(ins))
	s := res.Recover
	t.Logf("published %d, delivered %d, recover %+v", res.Published, res.Delivered, s)
	if s == nil || s.Subs != 60 || s.Disconnects < 20 {
		t.Fatalf("recover %+v", s)
	}
	// 300/s for 1.5 s, a steady rate that ended with the duration.
	if res.Published < 400 || res.Published > 500 || res.Rejected != 0 {
		t.Fatalf("published %d rejected %d", res.Published, res.Rejected)
	}
	// 60 subscribers each due every publication of its channel.
	if res.Expected != 20*res.Published || res.Delivered != res.Expected || res.Lost != 0 || res.Duplicates != 0 || res.Reordered != 0 {
		t.Fatalf("expected %d delivered %d lost %d dup %d ooo %d", res.Expected, res.Delivered, res.Lost, res.Duplicates, res.Reordered)
	}
	if s.Recoveries != s.Disconnects || s.NotRecovered != 0 || s.Unrecovered != 0 || s.AwayAtEnd != 0 || s.Replayed == 0 {
		t.Fatalf("every drop should come back recovered: %+v", s)
	}
	if s.OK.Count != s.Recoveries || s.CaughtUp.Count != s.Recoveries || s.CaughtUp.P50 < s.OK.P50 {
		t.Fatalf("latency samples: ok %+v caught up %+v for %d recoveries", s.OK, s.CaughtUp, s.Recoveries)
	}
	if res.Errors != 0 {
		t.Fatalf("errors %v", res.ErrorsByKind)
	}
	// Reconnects go round robin over the targets: both instances served
	// about half of them.
	for i, in := range ins {
		if n := in.Conns(); n < 30+s.Disconnects/3 {
			t.Errorf("instance %d served %d connections of %d", i, n, 60+3+s.Disconnects)
		}
	}
}

// TestRecoverCountsUnrecoverableGaps: with history too short for the
// gaps, reconnects are answered recovered:false and their gaps counted as
// unrecovered, not lost.
func TestRecoverCountsUnrecoverableGaps(t *testing.T) {
	_, ins := startHistory(t, 3, testserver.ReplayExact)
	cfg := recoverCfg(ins)
	cfg.AwayMin = 100 * time.Millisecond // 100/s per channel: some 10 or more missed
	res := runLocal(t, cfg)
	s := res.Recover
	// A gap over the 3 kept is unrecoverable; only drops near the end of
	// publishing, which miss less, may still be recovered.
	if s == nil || s.Disconnects < 20 || s.NotRecovered+s.Recoveries != s.Disconnects || s.NotRecovered < s.Disconnects*3/4 || s.Unrecovered < 4*s.NotRecovered {
		t.Fatalf("recover %+v", s)
	}
	if res.Lost != 0 || res.Duplicates != 0 || res.Delivered+s.Unrecovered != res.Expected {
		t.Fatalf("expected %d = delivered %d + unrecovered %d; lost %d dup %d", res.Expected, res.Delivered, s.Unrecovered, res.Lost, res.Duplicates)
	}
}

// TestRecoverFindsBadReplays: a replay one too long is a duplicate per
// recovery, one without its first message a loss per recovery.
func TestRecoverFindsBadReplays(t *testing.T) {
	for _, c := range []struct {
		name  string
		fault testserver.ReplayFault
	}{{"overlap", testserver.ReplayOverlap}, {"gap", testserver.ReplayGap}} {
		t.Run(c.name, func(t *testing.T) {
			h, ins := startHistory(t, 100000, c.fault)
			res := runLocal(t, recoverCfg(ins))
			n := h.Damaged()
			if n < 10 {
				t.Fatalf("only %d recoveries damaged: %+v", n, res.Recover)
			}
			lost, dups := res.Lost, res.Duplicates
			if c.fault == testserver.ReplayOverlap {
				lost, dups = dups, lost
			}
			if lost != n || dups != 0 || res.Reordered != 0 {
				t.Fatalf("%d damaged replays: lost %d dup %d reordered %d", n, res.Lost, res.Duplicates, res.Reordered)
			}
			// A replay without its first message leaves a gap that the rest
			// of the replay passes over (unless the replay was that one
			// message and nothing followed it).
			if s := res.Recover; c.fault == testserver.ReplayGap && (s.LostInGaps < n*3/4 || s.LostInGaps > res.Lost) {
				t.Fatalf("%d lost, %d of them in gaps", res.Lost, s.LostInGaps)
			}
		})
	}
}

// TestRecoverFinalizeMergesProcesses: figures of processes whose
// subscribers and publishers are apart add up to one account.
func TestRecoverFinalizeMergesProcesses(t *testing.T) {
	a := &Raw{Scenario: ScenarioRecover, Workers: 1, PubChans: []int64{100, 0}, Published: 100,
		Recover: &RecoverRaw{Chans: []recoverAgg{{Subs: 2, Base: 5, FirstSum: 10, Received: 150, Unrecovered: 40, NotRecovered: 1}, {}}, Disconnects: 3}}
	b := &Raw{Scenario: ScenarioRecover, Workers: 1, PubChans: []int64{0, 50}, Published: 50,
		Recover: &RecoverRaw{Chans: []recoverAgg{{Subs: 1, Base: 5, FirstSum: 5, Received: 95, Away: 1, AwayLastSum: 100},
			{Subs: 1, FirstSum: 0, Received: 49, Dups: 2}}, Disconnects: 4}}
	a.Merge(b)
	res := Finalize(a)
	// Channel 0: final offset 105, three subscribers from 5: 300 due,
	// 245 received, 40 unrecovered, 5 published after the away one's last
	// (100): 10 lost. Channel 1: 50 due, 49 received: 1 lost.
	s := res.Recover
	if res.Expected != 350 || res.Delivered != 294 || res.Lost != 11 || res.Duplicates != 2 {
		t.Fatalf("expected %d delivered %d lost %d dup %d", res.Expected, res.Delivered, res.Lost, res.Duplicates)
	}
	if s.Unrecovered != 40 || s.AwayTail != 5 || s.AwayAtEnd != 1 || s.Disconnects != 7 || s.Subs != 4 {
		t.Fatalf("recover %+v", s)
	}
}
