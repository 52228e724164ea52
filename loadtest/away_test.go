package loadtest

import "testing"

// TestRecoverDropperRules: recover's dropper spares a subscriber still
// receiving its replay, and with --missed holds reconnects for the burst
// instead of timing them.
func TestRecoverDropperRules(t *testing.T) {
	cfg := &Config{Scenario: ScenarioRecover, Conns: 2, Channels: 1, Rate: 10}
	cfg.Defaults()
	rc := newPollerRecover(cfg)
	if rc.eligible(&awaySub{trk: offsetTrack{catchUp: 7}}) {
		t.Fatal("a subscriber mid-replay is eligible for a drop")
	}
	if !rc.eligible(&awaySub{trk: newOffsetTrack()}) {
		t.Fatal("a caught-up subscriber is not eligible for a drop")
	}
	if rc.hold != nil {
		t.Fatal("random drops hold their reconnects")
	}
	cfg = &Config{Scenario: ScenarioRecover, Conns: 2, Channels: 1, Missed: 5}
	cfg.Defaults()
	rc = newPollerRecover(cfg)
	if rc.hold != &rc.burst.held {
		t.Fatal("--missed does not hold reconnects for the burst")
	}
}
