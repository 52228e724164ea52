package loadtest

import (
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

// ledger3s is a ledger for a 3 s linger with two watchers (0 and 1) on
// channel 0 and one (2) on channel 1.
func ledger3s() *presenceLedger {
	return newPresenceLedger(3*time.Second, 250*time.Millisecond, []int32{2, 1})
}

func TestLedgerFastReconnectSuppressed(t *testing.T) {
	l := ledger3s()
	l.left(1000*ms, 0, 7)
	l.back(1400*ms, 0, 7)
	l.left(1100*ms, 1, 8)
	l.back(1900*ms, 1, 8)
	got := l.tally()
	if got.Churns != 2 || got.Suppressed != 2 || got.Leaked != 0 || got.Pushes != 0 || got.PushesPerChurn != 0 {
		t.Fatalf("%+v", got)
	}
}

func TestLedgerLeakWithinLinger(t *testing.T) {
	l := ledger3s()
	l.left(1000*ms, 0, 7)
	l.push(1010*ms, 0, 0, 7, true) // the leave went out at once at one watcher
	l.back(1400*ms, 0, 7)
	l.push(1405*ms, 0, 0, 7, false)
	got := l.tally()
	if got.Suppressed != 0 || got.Leaked != 1 || got.LeakedPushes != 2 || got.Wrong != 0 {
		t.Fatalf("%+v", got)
	}
}

func TestLedgerLongAwayAnnounced(t *testing.T) {
	l := ledger3s()
	l.left(1000*ms, 0, 7)
	l.push(4050*ms, 0, 0, 7, true)
	l.push(4060*ms, 1, 0, 7, true)
	l.back(5000*ms, 0, 7)
	l.push(4999*ms, 1, 0, 7, false) // a join may reach a watcher before the member's ok
	l.push(5002*ms, 0, 0, 7, false)
	got := l.tally()
	if got.Announced != 1 || got.Wrong != 0 || got.Pushes != 4 || got.PushesPerChurn != 2 {
		t.Fatalf("%+v", got)
	}
}

func TestLedgerLongAwayWrong(t *testing.T) {
	for name, pushes := range map[string][]struct {
		at    int64
		w     int32
		leave bool
	}{
		"one watcher missed the leave": {{4050, 0, true}, {5001, 0, false}, {5001, 1, false}},
		"join before leave":            {{4900, 0, false}, {4950, 0, true}, {4050, 1, true}, {5001, 1, false}},
		"two joins":                    {{4050, 0, true}, {5001, 0, false}, {5002, 0, false}, {4050, 1, true}, {5001, 1, false}},
		"nothing":                      {},
	} {
		l := ledger3s()
		l.left(1000*ms, 0, 7)
		for _, p := range pushes {
			l.push(p.at*ms, p.w, 0, 7, p.leave)
		}
		l.back(5000*ms, 0, 7)
		if got := l.tally(); got.Announced != 0 || got.Wrong != 1 {
			t.Errorf("%s: %+v", name, got)
		}
	}
}

func TestLedgerNoLingerAnnouncesEveryChurn(t *testing.T) {
	l := newPresenceLedger(0, 250*time.Millisecond, []int32{1})
	l.left(1000*ms, 0, 3)
	l.push(1001*ms, 0, 0, 3, true)
	l.back(1100*ms, 0, 3)
	l.push(1101*ms, 0, 0, 3, false)
	if got := l.tally(); got.Announced != 1 || got.Suppressed != 0 {
		t.Fatalf("%+v", got)
	}
}

func TestLedgerBorderline(t *testing.T) {
	l := ledger3s()
	// away 3.1 s: within tol of the linger, silent is right (the held
	// leave's timer ticks late)...
	l.left(1000*ms, 0, 1)
	l.back(4100*ms, 0, 1)
	// ... and so is a leave then a join
	l.left(1000*ms, 0, 2)
	l.push(4000*ms, 0, 0, 2, true)
	l.push(4000*ms, 1, 0, 2, true)
	l.back(4100*ms, 0, 2)
	l.push(4100*ms, 0, 0, 2, false)
	l.push(4100*ms, 1, 0, 2, false)
	// away 3 s, a join alone: neither
	l.left(1000*ms, 0, 3)
	l.back(4000*ms, 0, 3)
	l.push(4000*ms, 0, 0, 3, false)
	got := l.tally()
	if got.Borderline != 3 || got.Wrong != 1 || got.Suppressed != 0 || got.Announced != 0 {
		t.Fatalf("%+v", got)
	}
}

func TestLedgerStrayAndUnfinished(t *testing.T) {
	l := ledger3s()
	l.push(500*ms, 0, 0, 7, false) // before any churn of user 7
	l.left(1000*ms, 0, 7)
	l.push(900*ms, 0, 0, 7, true)   // before this churn began
	l.push(1200*ms, 2, 1, 7, false) // user 7 never churned on channel 1
	got := l.tally()
	if got.Stray != 3 || got.Unfinished != 1 || got.Churns != 0 {
		t.Fatalf("%+v", got)
	}
}

// TestLedgerSuccessiveChurnsOfAUser: a user's pushes go to its latest churn,
// so a second churn is judged apart from the first.
func TestLedgerSuccessiveChurnsOfAUser(t *testing.T) {
	l := ledger3s()
	l.left(1000*ms, 0, 7)
	l.back(1200*ms, 0, 7)
	l.left(5000*ms, 0, 7)
	l.push(8050*ms, 0, 0, 7, true)
	l.push(8050*ms, 1, 0, 7, true)
	l.back(9000*ms, 0, 7)
	l.push(9001*ms, 0, 0, 7, false)
	l.push(9001*ms, 1, 0, 7, false)
	got := l.tally()
	if got.Suppressed != 1 || got.Announced != 1 || got.Churns != 2 || got.PushesPerChurn != 1 {
		t.Fatalf("%+v", got)
	}
}
