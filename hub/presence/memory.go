package presence

import (
	"hash/maphash"
	"sync"

	"golang.org/x/sys/cpu"
)

// MemoryStore is the single-instance presence store, for a gateway on the
// in-process broker: it implements hub.PresenceStore. Channels are spread
// over locked stripes so that joins on unrelated channels from different
// event loops do not contend; every call holds one stripe's lock for a map
// operation (Members: for the copy) and never blocks otherwise. Members and
// Stats answer inside the call.
type MemoryStore struct {
	seed    maphash.Seed
	stripes [numStripes]memoryStripe
}

// numStripes spreads channels over independent locks.
const numStripes = 64

type memoryStripe struct {
	mu sync.Mutex
	m  map[string]*Set // channels with at least one member; guarded by mu
	_  cpu.CacheLinePad
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	s := &MemoryStore{seed: maphash.MakeSeed()}
	for i := range s.stripes {
		s.stripes[i].m = make(map[string]*Set)
	}
	return s
}

func (s *MemoryStore) stripe(channel string) *memoryStripe {
	return &s.stripes[maphash.String(s.seed, channel)%numStripes]
}

// Join adds m to channel's members (m.Info is kept as given: the caller
// must not modify it).
func (s *MemoryStore) Join(channel string, m Member) {
	st := s.stripe(channel)
	st.mu.Lock()
	set := st.m[channel]
	if set == nil {
		set = NewSet()
		st.m[channel] = set
	}
	set.Join(m)
	st.mu.Unlock()
}

// Leave removes conn from channel's members; an empty channel is dropped.
func (s *MemoryStore) Leave(channel, conn string) {
	st := s.stripe(channel)
	st.mu.Lock()
	if set := st.m[channel]; set != nil && set.Leave(conn) && set.Len() == 0 {
		delete(st.m, channel)
	}
	st.mu.Unlock()
}

// Members calls done with a copy of channel's members (none: an empty
// list), inside the call.
func (s *MemoryStore) Members(channel string, done func([]Member, error)) {
	st := s.stripe(channel)
	st.mu.Lock()
	var out []Member
	if set := st.m[channel]; set != nil {
		out = set.AppendMembers(make([]Member, 0, set.Len()))
	}
	st.mu.Unlock()
	done(out, nil)
}

// Stats calls done with channel's counts, inside the call.
func (s *MemoryStore) Stats(channel string, done func(Stats, error)) {
	st := s.stripe(channel)
	st.mu.Lock()
	var n Stats
	if set := st.m[channel]; set != nil {
		n = set.Stats()
	}
	st.mu.Unlock()
	done(n, nil)
}
