package history

// Recovered decides a recovery: whether r, read for a client that has the
// stream up to since (and, if hasEpoch, in epoch), holds exactly what the
// client missed, and no more than max publications. When it does, the
// client gets r.Entries and "recovered":true; otherwise what it missed is
// lost to it (another epoch, evicted, expired, or too much).
func Recovered(since uint64, epoch string, hasEpoch bool, r Read, max int) bool {
	top := r.Pos.Offset
	if hasEpoch && epoch != r.Pos.Epoch || since > top || max < 0 || top-since > uint64(max) {
		return false
	}
	if uint64(len(r.Entries)) != top-since {
		return false
	}
	for i, e := range r.Entries {
		if e.Offset != since+1+uint64(i) {
			return false
		}
	}
	return true
}
