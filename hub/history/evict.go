package history

// evictBatch: an eviction frees 1/evictBatch of the budget beyond what is
// needed, so that compacting a victim's arena (a copy of what it keeps) is
// paid once for many appends rather than on each.
const evictBatch = 128

// makeRoom readies s's slots and arena for one more entry of n bytes
// within the budget, evicting as needed, and reports whether it could. s
// itself is never dropped here.
func (st *Store) makeRoom(s *stream, n int, now int64) bool {
	for {
		slots, arena := len(s.slots), len(s.buf)
		if !s.hasSlot() {
			slots = s.slotGrowth(s.size)
		}
		if _, ok := s.place(n); !ok {
			arena = s.arenaGrowth(n, s.size)
		}
		if arena == 0 { // larger than an arena can be
			if s.n == 0 {
				return false
			}
			st.popOldest(s)
			continue
		}
		extra := int64((slots-len(s.slots))*slotBytes + arena - len(s.buf))
		if st.used+extra <= st.max {
			if extra > 0 {
				st.used += extra
				s.resize(slots, arena)
			}
			return true
		}
		if !st.evict(s, st.used+extra-st.max, now) {
			return false
		}
	}
}

// evict does one step towards freeing over bytes for s and reports
// whether there was one to do: it drops an expired stream, or evicts the
// globally oldest entries. Those of s make room in its own arena; those of
// another stream are evicted while they remain the oldest until
// compacting that stream's arena frees enough, then it is compacted.
func (st *Store) evict(s *stream, over int64, now int64) bool {
	if st.expireOne(now) {
		return true
	}
	if st.age.len() == 0 {
		return false
	}
	v, key := st.age.top()
	if oldest := int64(v.at(0).seq); key < oldest {
		st.age.setKey(v, oldest)
		return true
	}
	if v == s {
		st.popOldest(s)
		return true
	}
	want := over + st.max/evictBatch
	for {
		st.popOldest(v)
		if v.n == 0 {
			st.drop(v)
			return true
		}
		if int64(len(v.buf)-v.live) >= want || int64(v.at(0).seq) > st.secondKey() {
			break
		}
	}
	old := v.bytes()
	v.resize(len(v.slots), v.live)
	st.used -= old - v.bytes()
	st.age.setKey(v, int64(v.at(0).seq))
	return true
}

// secondKey is a lower bound of the oldest entry of the streams other than
// the age heap's top.
func (st *Store) secondKey() int64 {
	h := st.age.items
	switch len(h) {
	case 1:
		return int64(^uint64(0) >> 1)
	case 2:
		return h[1].key
	}
	return min(h[1].key, h[2].key)
}

// popOldest evicts s's oldest entry, keeping the age heap to the streams
// that have entries.
func (st *Store) popOldest(s *stream) {
	s.pop()
	if s.n == 0 && st.age.has(s) {
		st.age.remove(s)
	}
}
