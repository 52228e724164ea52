package loadtest

import "testing"

// feed gives a track messages with these offsets, in order.
func feed(t *testing.T, tr *offsetTrack, offsets ...int64) {
	t.Helper()
	for _, o := range offsets {
		if _, ok := tr.message(o); !ok {
			t.Fatalf("message %d refused", o)
		}
	}
}

// due is what the track was due up to final: the identity the scenario's
// loss figure rests on is due = received + unrecovered + holes + tail.
func due(tr *offsetTrack, final int64) int64 { return final - tr.first }

func TestOffsetTrackLiveInOrder(t *testing.T) {
	tr := newOffsetTrack()
	if !tr.subscribed(10, "e1", recNone) {
		t.Fatal("a first subscribe has nothing to replay")
	}
	feed(t, &tr, 11, 12, 13)
	if tr.received != 3 || tr.holes != 0 || tr.dups != 0 || tr.reordered != 0 || tr.since() != 13 {
		t.Fatalf("%+v", tr)
	}
	if due(&tr, 13) != tr.received {
		t.Fatalf("due %d received %d", due(&tr, 13), tr.received)
	}
}

// TestOffsetTrackRecovery: a reconnect that recovers gets the gap replayed
// after its ok, then live messages; the replay's last offset (the ok's)
// ends the recovery.
func TestOffsetTrackRecovery(t *testing.T) {
	tr := newOffsetTrack()
	tr.subscribed(0, "e1", recNone)
	feed(t, &tr, 1, 2, 3)
	if tr.subscribed(7, "e1", recTrue) {
		t.Fatal("offsets 4-7 are still to replay")
	}
	for o := int64(4); o <= 7; o++ {
		caught, ok := tr.message(o)
		if !ok || caught != (o == 7) {
			t.Fatalf("offset %d: caught up %v", o, caught)
		}
	}
	feed(t, &tr, 8, 9)
	if tr.received != 9 || tr.recoveries != 1 || tr.notRecov != 0 || tr.holes != 0 || tr.dups+tr.reordered != 0 {
		t.Fatalf("%+v", tr)
	}
	// Nothing published while away: recovered, nothing to replay.
	if !tr.subscribed(9, "e1", recTrue) || tr.recoveries != 2 {
		t.Fatalf("recovery of an empty gap: %+v", tr)
	}
}

// TestOffsetTrackUnrecovered: an ok with "recovered":false skips the gap,
// which is counted apart from losses; live messages go on after it.
func TestOffsetTrackUnrecovered(t *testing.T) {
	tr := newOffsetTrack()
	tr.subscribed(0, "e1", recNone)
	feed(t, &tr, 1, 2)
	if !tr.subscribed(50, "e1", recFalse) {
		t.Fatal("nothing is replayed after recovered:false")
	}
	feed(t, &tr, 51, 52)
	if tr.unrecovered != 48 || tr.notRecov != 1 || tr.received != 4 || tr.holes != 0 || tr.dups != 0 {
		t.Fatalf("%+v", tr)
	}
	if due(&tr, 52) != tr.received+tr.unrecovered {
		t.Fatalf("due %d = received %d + unrecovered %d", due(&tr, 52), tr.received, tr.unrecovered)
	}
	// A gateway without history answers a since without "recovered": not
	// a recovery either.
	tr.subscribed(60, "e1", recNone)
	if tr.notRecov != 2 || tr.unrecovered != 48+8 {
		t.Fatalf("%+v", tr)
	}
}

// TestOffsetTrackEpochChange: another epoch is another stream; the
// subscriber is re-based so its count stays exact for the new one.
func TestOffsetTrackEpochChange(t *testing.T) {
	tr := newOffsetTrack()
	tr.subscribed(100, "e1", recNone)
	feed(t, &tr, 101, 102)
	tr.subscribed(3, "e2", recTrue) // a gateway claiming recovery across epochs is not believed
	feed(t, &tr, 4, 5)
	if tr.epochs != 1 || tr.notRecov != 1 || tr.recoveries != 0 || tr.received != 4 || tr.since() != 5 || tr.epoch != "e2" {
		t.Fatalf("%+v", tr)
	}
	if due(&tr, 5) != tr.received {
		t.Fatalf("due %d received %d after re-basing", due(&tr, 5), tr.received)
	}
}

// TestOffsetTrackEpochOfANewStream: a channel without a stream yet has no
// epoch; the first one a reconnect's ok gives is the stream's, not a change.
func TestOffsetTrackEpochOfANewStream(t *testing.T) {
	tr := newOffsetTrack()
	tr.subscribed(0, "", recNone)
	if tr.subscribed(5, "e1", recTrue) || tr.epochs != 0 || tr.recoveries != 1 || tr.epoch != "e1" {
		t.Fatalf("%+v", tr)
	}
	feed(t, &tr, 1, 2, 3, 4, 5)
	if tr.received != 5 || tr.holes != 0 {
		t.Fatalf("%+v", tr)
	}
	if tr.subscribed(9, "e2", recTrue); tr.epochs != 1 {
		t.Fatalf("a known epoch that changes is a change: %+v", tr)
	}
}

func TestOffsetTrackLossDupReorder(t *testing.T) {
	tr := newOffsetTrack()
	tr.subscribed(0, "e", recNone)
	feed(t, &tr, 1, 2, 5, 3, 3, 6, 2) // 4 never comes; 3 is late, then again; 2 again
	if tr.received != 5 || tr.holes != 1 || tr.reordered != 1 || tr.dups != 2 {
		t.Fatalf("%+v", tr)
	}
	if due(&tr, 6) != tr.received+tr.holes {
		t.Fatalf("due %d != received %d + holes %d", due(&tr, 6), tr.received, tr.holes)
	}
	feed(t, &tr, 0) // published before the subscription: not due
	if tr.dups != 3 || tr.received != 5 {
		t.Fatalf("an offset before the first ok: %+v", tr)
	}
}

// TestOffsetTrackBeyondWindow: far behind the window a late offset fills
// a hole while holes are open, and is a duplicate once none are.
func TestOffsetTrackBeyondWindow(t *testing.T) {
	tr := newOffsetTrack()
	tr.subscribed(0, "e", recNone)
	feed(t, &tr, 1, 3) // hole at 2
	for o := int64(4); o <= 200; o++ {
		feed(t, &tr, o)
	}
	feed(t, &tr, 2, 2, 150)
	if tr.holes != 0 || tr.reordered != 1 || tr.dups != 2 || tr.received != 200 {
		t.Fatalf("%+v", tr)
	}
}

// TestOffsetTrackReplayOverlap: a gateway that replays from since instead
// of since+1, or replays past the live ones, delivers duplicates; a live
// message overtaking the replay makes the replay late.
func TestOffsetTrackReplayOverlap(t *testing.T) {
	tr := newOffsetTrack()
	tr.subscribed(0, "e", recNone)
	feed(t, &tr, 1, 2)
	tr.subscribed(4, "e", recTrue)
	feed(t, &tr, 2, 3, 4) // 2 again
	if tr.dups != 1 || tr.received != 4 {
		t.Fatalf("%+v", tr)
	}
	tr.subscribed(6, "e", recTrue)
	feed(t, &tr, 7, 5, 6) // live 7 before the replay's 5 and 6
	if tr.reordered != 2 || tr.holes != 0 || tr.received != 7 {
		t.Fatalf("%+v", tr)
	}
}

func TestOffsetTrackMessageBeforeOK(t *testing.T) {
	tr := newOffsetTrack()
	if _, ok := tr.message(1); ok {
		t.Fatal("a message before any ok was accounted")
	}
}
