package loadtest

import (
	"testing"
	"time"

	"github.com/wshub/wshub/loadtest/testserver"
)

// mangledCounts is what one subscriber of a channel with publications
// 1..n should see from the mangler, worked out independently of it.
func mangledCounts(n, drop, dup, swap int) (unique, dups, reordered int64) {
	for i := 1; i <= n; i++ {
		switch {
		case i%drop == 0:
		case i%swap == 0:
			unique++
			if i+1 <= n && (i+1)%drop != 0 {
				reordered++ // arrives after i+1
			}
		default:
			unique++
			if i%dup == 0 {
				dups++
			}
		}
	}
	return
}

func TestLossDuplicatesAndReorderingAreDetected(t *testing.T) {
	const perChan, drop, dup, swap = 100, 10, 7, 13
	ws, stop := testserver.StartMangler(drop, dup, swap)
	defer stop()
	res := runLocal(t, Config{
		Scenario: ScenarioFanout, Targets: []string{ws}, Pollers: 2,
		Subs: 6, Channels: 2, Publishers: 2, Msgs: 2 * perChan, Size: 80,
		Duration: 10 * time.Second, Drain: 2 * time.Second,
	})
	u, d, r := mangledCounts(perChan, drop, dup, swap)
	if u != 90 || d != 12 || r != 6 { // sanity of the model itself
		t.Fatalf("model: unique %d dups %d reordered %d", u, d, r)
	}
	const subs = 6
	if res.Expected != subs*perChan || res.Delivered != subs*u || res.Lost != subs*(perChan-u) {
		t.Errorf("expected %d delivered %d lost %d, want %d %d %d", res.Expected, res.Delivered, res.Lost, subs*perChan, subs*u, subs*(perChan-u))
	}
	if res.Duplicates != subs*d || res.Reordered != subs*r {
		t.Errorf("duplicates %d reordered %d, want %d %d", res.Duplicates, res.Reordered, subs*d, subs*r)
	}
	if res.Errors != 0 {
		t.Errorf("errors %v", res.ErrorsByKind)
	}
	if want := float64(subs*(perChan-u)) / float64(subs*perChan); res.LossRatio != want {
		t.Errorf("loss ratio %v, want %v", res.LossRatio, want)
	}
}
