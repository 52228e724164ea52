package loadtest

// offsetTrack is one recover subscriber's accounting of its channel's
// stream across reconnects, fed with its subscribe oks and messages: pure
// state, no clock, no goroutine.
//
// Every offset from the first ok's offset + 1 to the channel's last one is
// due exactly once. A due offset ends up received, unrecovered (skipped by
// an ok that said "recovered":false), a hole (skipped over by a later
// message and never filled: lost), or after the subscriber's last message
// (lost as well, unless the subscriber was away at the end). Order is
// checked against the next offset due, so the state stays a few words:
// holes are filled exactly within a seqWindow-deep window behind it (late
// ones there count as reordered, ones already there as duplicates), and
// further back a late offset is a duplicate unless holes are open, when it
// is taken to fill one.
type offsetTrack struct {
	first   int64  // offset of the first ok: nothing at or below it is due; -1 before it
	next    int64  // next offset due
	seen    uint64 // bit d set: offset next-1-d is settled (received, unrecovered or not due)
	holes   int64  // offsets skipped over that have not arrived since
	live    int64  // the current subscription's ok offset: offsets above it are live, not replayed
	catchUp int64  // the offset that ends the current recovery's replay, 0 when none is pending
	epoch   string // the stream's epoch, as the last ok said

	received    int64 // distinct due offsets received
	dups        int64 // offsets received again, or not due at all
	reordered   int64 // offsets that arrived after a higher one
	unrecovered int64 // due offsets skipped by "recovered":false oks
	recoveries  int32 // oks that said "recovered":true
	notRecov    int32 // reconnect oks that did not (false, or absent)
	epochs      int32 // reconnect oks with another epoch
}

func newOffsetTrack() offsetTrack { return offsetTrack{first: -1} }

// started reports whether a first ok has been seen.
func (t *offsetTrack) started() bool { return t.first >= 0 }

// since is the offset a reconnect subscribes from: the last one settled.
func (t *offsetTrack) since() int64 { return t.next - 1 }

// subscribed records a subscribe ok carrying the channel's latest offset,
// its epoch and what it said about recovery (rec). It reports whether the
// subscriber is caught up at once: nothing (more) to replay.
func (t *offsetTrack) subscribed(offset int64, epoch string, rec int8) bool {
	t.live, t.catchUp = offset, 0
	switch {
	case !t.started():
		t.first, t.next, t.epoch = offset, offset+1, epoch
		t.seen = ^uint64(0) // everything up to first is not due
		return true
	case epoch != t.epoch && t.epoch != "":
		// Another stream: its offsets say nothing of the old one's. The
		// subscriber is re-based (first moves with next), so what it was
		// due so far stays as counted and the new stream is due after
		// offset.
		t.epochs++
		t.notRecov++
		t.first += offset - t.since()
		t.next, t.epoch, t.seen = offset+1, epoch, ^uint64(0)
		return true
	case rec == recTrue:
		// A channel that had no stream yet has no epoch: the first one
		// given is the stream's, no change.
		t.epoch = epoch
		t.recoveries++
		if offset >= t.next {
			t.catchUp = offset
			return false
		}
		return true
	}
	t.notRecov++
	t.epoch = epoch
	if gap := offset - t.since(); gap > 0 {
		t.unrecovered += gap
		t.next = offset + 1
		t.seen = ^uint64(0)
	}
	return true
}

// message records a message's offset. It reports false for a message
// before any ok (nothing to account it against), and caughtUp when it
// completes a pending recovery's replay.
func (t *offsetTrack) message(offset int64) (caughtUp, ok bool) {
	if !t.started() {
		return false, false
	}
	switch {
	case offset >= t.next:
		t.holes += offset - t.next
		t.shift(offset - t.next + 1)
		t.seen |= 1
		t.next = offset + 1
		t.received++
	case t.next-1-offset < seqWindow:
		bit := uint64(1) << uint(t.next-1-offset)
		if t.seen&bit != 0 {
			t.dups++
			break
		}
		t.seen |= bit
		t.holes--
		t.reordered++
		t.received++
	case t.holes > 0 && offset > t.first:
		t.holes--
		t.reordered++
		t.received++
	default:
		t.dups++
	}
	if t.catchUp > 0 && t.next > t.catchUp {
		t.catchUp = 0
		return true, true
	}
	return false, true
}

// shift moves the window n offsets up; the offsets it passes over are not
// settled.
func (t *offsetTrack) shift(n int64) {
	if n >= seqWindow {
		t.seen = 0
		return
	}
	t.seen <<= uint(n)
}
