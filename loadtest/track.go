package loadtest

// seqWindow is how far behind the highest sequence a late message can be
// and still be checked exactly for duplication. Later ones are counted as
// reordered (and unique): the gateway promises order, so any of them is
// already a finding.
const seqWindow = 64

// tracker is one subscriber's exact accounting of one channel's sequence
// numbers (which start at 1). It costs 32 bytes per subscriber.
type tracker struct {
	max       int64  // highest sequence seen (0 = none)
	seen      uint64 // bit d set = max-d was received, for d < seqWindow
	unique    int64  // distinct sequences received
	dups      int64  // received again
	reordered int64  // arrived after a higher sequence
}

// add records sequence s; it reports false for an impossible sequence.
func (t *tracker) add(s int64) bool {
	if s <= 0 {
		return false
	}
	switch {
	case s > t.max:
		d := s - t.max
		if d >= seqWindow {
			t.seen = 0
		} else {
			t.seen <<= uint(d)
		}
		t.seen |= 1
		t.max = s
		t.unique++
	default:
		d := t.max - s
		if d < seqWindow {
			bit := uint64(1) << uint(d)
			if t.seen&bit != 0 {
				t.dups++
				return true
			}
			t.seen |= bit
		}
		t.unique++
		t.reordered++
	}
	return true
}
