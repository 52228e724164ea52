package history

import (
	"strings"
	"time"
)

// streamBytes is what a stream costs besides its entries and its name: the
// stream struct, its map entry, its epoch and its share of the heaps
// (BenchmarkStoreMemory measures it).
const streamBytes = 320

// Store is the in-memory history of the memory broker: per channel a ring
// of its newest publications (Options.Size), dropped Options.TTL after its
// last publication, all within a byte budget.
//
// It is a deterministic core: no goroutines, no timers; time is the now
// argument, a monotonic clock in nanoseconds. It is not safe for
// concurrent use: its owner (the memory broker) guards it with a mutex.
//
// The budget counts what is allocated: each stream's slot ring and arena
// at their capacity plus streamBytes and its name. When an append would go
// over it, expired streams go first, then the globally oldest entries,
// whatever their stream: every stream then keeps the same recent window of
// time, which is what recovery needs (a client that was away for less than
// that window recovers on every channel), rather than quiet channels
// losing everything to busy ones. A stream whose oldest entries were
// evicted keeps its offsets and epoch (a recovery from before them sees the
// gap); a stream evicted wholly is dropped, and so is an expired one: its
// next publication starts a new epoch at offset 1.
type Store struct {
	streams  map[string]*stream
	max      int64  // the byte budget
	used     int64  // bytes counted
	seq      uint64 // appends so far: the age of entries
	age      streamHeap
	ttl      streamHeap
	newEpoch func() string
}

// stream is one channel's stream.
type stream struct {
	name     string
	epoch    string
	top      uint64 // offset of the latest publication
	size     int    // Options.Size of the latest publication
	deadline int64  // when it expires, if it is in the ttl heap
	idx      [2]int // its positions in the age and ttl heaps, -1 when out
	ring
}

// cost is what s counts against the budget.
func (s *stream) cost() int64 { return streamBytes + int64(len(s.name)) + s.ring.bytes() }

// NewStore returns an empty store keeping at most maxBytes. newEpoch gives
// each new stream its epoch and must never repeat itself (nil:
// RandomEpochs()); its first value is the epoch of streams that do not
// exist.
func NewStore(maxBytes int64, newEpoch func() string) *Store {
	if newEpoch == nil {
		newEpoch = RandomEpochs()
	}
	return &Store{
		streams:  make(map[string]*stream),
		max:      maxBytes,
		age:      streamHeap{which: 0},
		ttl:      streamHeap{which: 1},
		newEpoch: newEpoch,
	}
}

// Len returns the number of streams held.
func (st *Store) Len() int { return len(st.streams) }

// Bytes returns the bytes counted against the budget.
func (st *Store) Bytes() int64 { return st.used }

// Append adds data (copied) to channel's stream as its next publication
// and returns the publication's position. opt must be On. When data cannot
// be kept even in an otherwise empty store the publication still gets its
// position but the stream is dropped.
func (st *Store) Append(channel string, data []byte, opt Options, now int64) Position {
	s := st.live(channel, now)
	if s == nil || s.top == MaxOffset {
		if s != nil {
			st.drop(s)
		}
		s = &stream{name: strings.Clone(channel), epoch: st.newEpoch(), idx: [2]int{-1, -1}}
		st.streams[s.name] = s
		st.used += s.cost()
	}
	s.top++
	pos := Position{Offset: s.top, Epoch: s.epoch}
	st.setTTL(s, opt.TTL, now)
	s.size = max(opt.Size, 1) // a ring needs a slot
	for s.n > 0 && s.n >= s.size {
		st.popOldest(s)
	}
	if !st.makeRoom(s, len(data), now) {
		st.drop(s)
		return pos
	}
	if s.n == 0 {
		st.age.push(s, int64(st.seq))
	}
	s.push(st.seq, data)
	st.seq++
	return pos
}

// Read returns up to limit entries of channel's stream with offsets after
// since, oldest first, appended to buf[:0], and the stream's position; a
// missing stream reads as offset 0 with no epoch (""), which no stream
// has, so a client's position in a lost stream is not recoverable.
// The entries' Data are the store's own bytes, unchanged until the next
// Append on channel.
func (st *Store) Read(channel string, since uint64, limit int, now int64, buf []Entry) Read {
	buf = buf[:0]
	s := st.live(channel, now)
	if s == nil {
		return Read{Entries: buf}
	}
	first := s.top - uint64(s.n) + 1
	from := max(since+1, first)
	for o := from; o <= s.top && len(buf) < limit; o++ {
		buf = append(buf, Entry{Offset: o, Data: s.data(s.at(int(o - first)))})
	}
	return Read{Pos: Position{Offset: s.top, Epoch: s.epoch}, Entries: buf}
}

// Sweep drops streams expired at now, doing at most work steps (a step
// drops a stream or refreshes a stale deadline), and reports whether it
// stopped for lack of steps.
func (st *Store) Sweep(now int64, work int) bool {
	for ; work > 0; work-- {
		if !st.expireOne(now) {
			return false
		}
	}
	return st.ttl.len() > 0 && st.ttl.items[0].key <= now
}

// live returns channel's stream, dropping it if it expired.
func (st *Store) live(channel string, now int64) *stream {
	s := st.streams[channel]
	if s != nil && st.ttl.has(s) && s.deadline <= now {
		st.drop(s)
		return nil
	}
	return s
}

// setTTL makes s expire ttl after now; 0 means never.
func (st *Store) setTTL(s *stream, ttl time.Duration, now int64) {
	switch {
	case ttl <= 0:
		if st.ttl.has(s) {
			st.ttl.remove(s)
		}
	case !st.ttl.has(s):
		s.deadline = now + int64(ttl)
		st.ttl.push(s, s.deadline)
	default:
		s.deadline = now + int64(ttl)
		if s.deadline < st.ttl.key(s) { // keys may only be stale low
			st.ttl.setKey(s, s.deadline)
		}
	}
}

// expireOne does one step of dropping expired streams and reports whether
// there was one to do.
func (st *Store) expireOne(now int64) bool {
	if st.ttl.len() == 0 {
		return false
	}
	s, key := st.ttl.top()
	switch {
	case key > now:
		return false
	case key < s.deadline:
		st.ttl.setKey(s, s.deadline)
	default:
		st.drop(s)
	}
	return true
}

// drop forgets s.
func (st *Store) drop(s *stream) {
	if st.age.has(s) {
		st.age.remove(s)
	}
	if st.ttl.has(s) {
		st.ttl.remove(s)
	}
	delete(st.streams, s.name)
	st.used -= s.cost()
}
