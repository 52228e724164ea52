package loadtest

import (
	"context"
	"slices"
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

// roundsCfg is a short recover --missed run: 60 subscribers over 3
// channels, 2 rounds of 50 missed per channel.
func roundsCfg(ins []*testserver.Instance) Config {
	cfg := recoverCfg(ins)
	cfg.DisconnectRate, cfg.AwayMin, cfg.AwayMax, cfg.Rate = 0, 0, 0, 0
	cfg.Missed, cfg.Rounds, cfg.Duration = 50, 2, 5*time.Second
	return cfg
}

// TestRecoverRoundsCatchUpExactly: each round drops all 60 subscribers,
// publishes 50 per channel while they are away and has them all recover
// those 50 exactly; the barriers come in order around each burst.
func TestRecoverRoundsCatchUpExactly(t *testing.T) {
	_, ins := startHistory(t, 100000, testserver.ReplayExact)
	var phases []string
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw, err := Run(ctx, roundsCfg(ins), &Local{OnBarrier: func(p string) { phases = append(phases, p) }})
	if err != nil {
		t.Fatal(err)
	}
	res := Finalize(raw)
	s := res.Recover
	// A warm-up round of 1 per channel, then 2 of 50.
	if res.Published != 303 || res.Expected != 20*res.Published || res.Delivered != res.Expected || res.Lost != 0 || res.Duplicates != 0 || res.Reordered != 0 || res.Errors != 0 {
		t.Fatalf("published %d expected %d delivered %d lost %d dup %d ooo %d errors %v", res.Published, res.Expected, res.Delivered, res.Lost, res.Duplicates, res.Reordered, res.ErrorsByKind)
	}
	if s.Disconnects != 180 || s.Recoveries != 180 || s.NotRecovered != 0 || len(s.Rounds) != 2 {
		t.Fatalf("recover %+v", s)
	}
	for i, r := range s.Rounds {
		if r.Subs != 60 || r.Missed != 150 || r.CaughtUp != 60 || r.Unsettled != 0 || r.Replayed != 60*50 || r.CatchUp.Count != 60 || r.AllMs <= 0 || float64(r.CatchUp.Max) > 1000*r.AllMs+100 { // AllMs is rounded to 0.1 ms
			t.Fatalf("round %d: %+v", i+1, r)
		}
	}
	if m := s.RoundMedian; m == nil || m.AllMs <= 0 || m.CatchUpP99Us < m.CatchUpP50Us {
		t.Fatalf("median %+v", m)
	}
	want := []string{PhaseReady, "dropped-warmup", "burst-warmup", "caught-warmup", "dropped-1", "burst-1", "caught-1", "dropped-2", "burst-2", "caught-2", PhaseDone}
	if !slices.Equal(phases, want) {
		t.Fatalf("barriers %v, want %v", phases, want)
	}
}

// TestRecoverRoundsCountRecoveredFalse: history shorter than the missed
// publications answers every reconnect recovered:false; the round
// settles on those oks and their gaps are unrecovered, not lost.
func TestRecoverRoundsCountRecoveredFalse(t *testing.T) {
	_, ins := startHistory(t, 20, testserver.ReplayExact)
	res := runLocal(t, roundsCfg(ins))
	s := res.Recover
	if res.Lost != 0 || res.Duplicates != 0 || s.Unrecovered != 2*60*50 || res.Delivered+s.Unrecovered != res.Expected {
		t.Fatalf("expected %d delivered %d unrecovered %d lost %d dup %d", res.Expected, res.Delivered, s.Unrecovered, res.Lost, res.Duplicates)
	}
	for i, r := range s.Rounds {
		if r.Subs != 60 || r.NotRecovered != 60 || r.CaughtUp != 0 || r.Unsettled != 0 || r.CatchUp.Count != 0 || r.AllMs <= 0 {
			t.Fatalf("round %d: %+v", i+1, r)
		}
	}
}

// TestRecoverRoundsEndWhenReplaysNeverFinish: replays one message short
// never catch up (nothing is published during the burst to finish them);
// each round gives up after --duration, reports them unsettled and the
// run still ends, with the missing messages lost.
func TestRecoverRoundsEndWhenReplaysNeverFinish(t *testing.T) {
	h, ins := startHistory(t, 100000, testserver.ReplayShort)
	cfg := roundsCfg(ins)
	cfg.Duration = 500 * time.Millisecond
	start := time.Now()
	res := runLocal(t, cfg)
	if el := time.Since(start); el > 15*time.Second {
		t.Fatalf("run took %v", el)
	}
	s := res.Recover
	for i, r := range s.Rounds {
		if r.Subs != 60 || r.Unsettled != 60 || r.CaughtUp != 0 {
			t.Fatalf("round %d: %+v", i+1, r)
		}
	}
	// The warm-up's replay (of one) was cut short as well: every recovery
	// lost its last message, except where a later replay brought it.
	if n := h.Damaged(); n != 180 || res.Lost == 0 || res.Duplicates != 0 {
		t.Fatalf("damaged %d lost %d dup %d", n, res.Lost, res.Duplicates)
	}
}
