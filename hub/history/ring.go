package history

import "math"

// slot locates one entry in its stream's arena. seq is the store-wide
// append order, which lets the store evict the globally oldest entry.
type slot struct {
	seq uint64
	off uint32
	n   uint32
}

// slotBytes is what a slot costs: its share of the slot ring.
const slotBytes = 16

// maxArena keeps arena offsets within a slot's uint32.
const maxArena = math.MaxUint32

// ring is one stream's entries, oldest first: their slots in a circular
// slice and their data in one arena used as a circular byte buffer whose
// entries never wrap (an entry that does not fit before the end starts
// again at 0), so every entry's data is one contiguous slice that Read can
// hand out without copying. Appends into a full ring reuse the space of the
// entries they push out: a stream in its steady state allocates nothing.
type ring struct {
	slots   []slot // len(slots) is the capacity
	head, n int    // index of the oldest slot, slots in use
	buf     []byte // the arena; len(buf) is its capacity
	live    int    // data bytes held
	// Data lies in [start, end), or, once wrapped, from start to where the
	// arena's tail was left unused, then in [0, end).
	start, end int
	wrapped    bool
}

// at returns the i-th slot from the oldest.
func (r *ring) at(i int) slot { return r.slots[r.wrap(r.head+i)] }

// wrap maps i in [0, 2*len(slots)) into the slot ring (cheaper than %).
func (r *ring) wrap(i int) int {
	if i >= len(r.slots) {
		i -= len(r.slots)
	}
	return i
}

// data returns the bytes of s; the slice cannot be appended over.
func (r *ring) data(s slot) []byte {
	end := int(s.off) + int(s.n)
	return r.buf[s.off:end:end]
}

// place returns where n more bytes of data go, or false if the arena has
// no contiguous room for them.
func (r *ring) place(n int) (int, bool) {
	switch {
	case r.wrapped:
		return r.end, r.end+n <= r.start
	case r.end+n <= len(r.buf):
		return r.end, true
	default:
		return 0, n <= r.start
	}
}

// push appends an entry; the caller made room in both the slots and the
// arena (hasSlot, place).
func (r *ring) push(seq uint64, data []byte) {
	off, _ := r.place(len(data))
	if off != r.end {
		r.wrapped = true
	}
	copy(r.buf[off:], data)
	r.end = off + len(data)
	r.slots[r.wrap(r.head+r.n)] = slot{seq: seq, off: uint32(off), n: uint32(len(data))}
	r.n++
	r.live += len(data)
}

// pop drops the oldest entry. Its bytes are not touched: slices handed out
// by Read stay valid.
func (r *ring) pop() {
	old := r.slots[r.head]
	r.head = r.wrap(r.head + 1)
	r.n--
	r.live -= int(old.n)
	if r.n == 0 {
		r.start, r.end, r.wrapped = 0, 0, false
		return
	}
	next := int(r.slots[r.head].off)
	if r.wrapped && next < r.start { // crossed into the front part
		r.wrapped = false
	}
	r.start = next
}

// hasSlot reports whether one more entry has a slot.
func (r *ring) hasSlot() bool { return r.n < len(r.slots) }

// slotGrowth returns the slot capacity for one more entry, the ring
// holding at most size.
func (r *ring) slotGrowth(size int) int {
	return min(size, max(4, 2*len(r.slots)))
}

// arenaGrowth returns the arena capacity for n more data bytes, sized so
// that a ring of size entries like the ones it holds ends up fitting with
// little slack, and doubling at most so that growing stays amortized O(1).
// 0 means the arena cannot hold them (maxArena).
func (r *ring) arenaGrowth(n, size int) int {
	want := r.live + n
	if want > maxArena {
		return 0
	}
	full := want/(r.n+1)*min(size, 1<<20) + n // the ring's predicted full size, plus one entry of wrap slack
	c := max(want, min(max(64, 2*len(r.buf)), max(full, len(r.buf)+len(r.buf)/4)))
	return min(c, maxArena)
}

// resize moves the entries, oldest first, into a new slot ring of capacity
// slots and, unless arena is its capacity already, a new arena. The old
// arena is left as it was: slices handed out by Read stay valid.
func (r *ring) resize(slots, arena int) {
	ns := make([]slot, slots)
	for i := range r.n {
		ns[i] = r.at(i)
	}
	r.slots, r.head = ns, 0
	if arena == len(r.buf) {
		return
	}
	nb := make([]byte, arena)
	off := 0
	for i := range ns[:r.n] {
		s := &ns[i]
		copy(nb[off:], r.data(*s))
		s.off = uint32(off)
		off += int(s.n)
	}
	r.buf = nb
	r.start, r.end, r.wrapped = 0, off, false
}

// bytes is what the ring has allocated.
func (r *ring) bytes() int64 { return int64(len(r.slots)*slotBytes + len(r.buf)) }
