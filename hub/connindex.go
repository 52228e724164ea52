package hub

import (
	"math/bits"
	"sync"
	"time"

	"golang.org/x/sys/cpu"
)

// connIndex maps local connection ids to their state, for SendDirect and the
// Registrar's walk (localconns.go). It is only filled when a Registrar is
// configured (otherwise no one can address a connection); sharded so that
// opens and closes on different loops rarely meet on one lock.
type connIndex struct {
	stripes [16]struct {
		mu  sync.Mutex
		set connSet // guarded by mu
		_   cpu.CacheLinePad
	}
	born   time.Time // set once: connData.listed counts seconds from it
	bornMs int64     // born, unix ms
	cur    int       // the stripe Next walks; owned by the walker
}

func newConnIndex() *connIndex {
	now := time.Now()
	return &connIndex{born: now, bornMs: now.UnixMilli()}
}

// stamp is the connData.listed of a connection opening now.
func (x *connIndex) stamp() uint32 { return 1 + uint32(time.Since(x.born)/time.Second) }

// connectedAt is the opening time (unix ms) of a listed connection, to the
// second: what the Registrar is told and what its walk reads agree.
func (x *connIndex) connectedAt(cs *connData) int64 {
	return x.bornMs + int64(cs.listed-1)*1000
}

func (x *connIndex) put(id uint64, cs *connData) {
	sh := &x.stripes[id%uint64(len(x.stripes))]
	sh.mu.Lock()
	sh.set.put(cs)
	sh.mu.Unlock()
}

func (x *connIndex) del(id uint64) {
	sh := &x.stripes[id%uint64(len(x.stripes))]
	sh.mu.Lock()
	sh.set.del(id)
	sh.mu.Unlock()
}

func (x *connIndex) get(id uint64) *connData {
	sh := &x.stripes[id%uint64(len(x.stripes))]
	sh.mu.Lock()
	cs := sh.set.get(id)
	sh.mu.Unlock()
	return cs
}

// connSet is a set of connections keyed by their own ids (conn.ID()):
// open addressing with linear probing, one pointer a slot, at most 3/4 full
// and halved when 1/8 full, so about 14 bytes a connection where a
// map[uint64]*connData spends about 30 (per-connection memory is the
// gateway's budget). Not safe for concurrent use.
type connSet struct {
	// nil for empty; 2^k-1 slots, so that with the 8-byte header Go gives
	// an object with pointers the array fills its size class exactly
	// (2^k slots would spill into the next one, 1/8 bigger)
	slots []*connData
	n     int
	// walk is the next slot the Registrar's walk visits (0 when it walks
	// another set). A resize sends it back to 0 (the entries moved), a
	// deletion that moves an entry from at or past it to before it brings
	// it back to that slot: so a walk from 0 to the end meets every entry
	// that was in the set all along.
	walk int
}

const minConnSlots = 15 // a connSet never shrinks below

// home is the first slot to look at for id: Fibonacci hashing (the ids of
// a stripe, 16 apart, spread) scaled to the table.
func (t *connSet) home(id uint64) int {
	hi, _ := bits.Mul64(id*0x9E3779B97F4A7C15, uint64(len(t.slots)))
	return int(hi)
}

// find returns the slot holding id, or -1.
func (t *connSet) find(id uint64) int {
	if t.n == 0 {
		return -1
	}
	for s := t.home(id); ; s = t.after(s) {
		switch cs := t.slots[s]; {
		case cs == nil:
			return -1
		case cs.conn.ID() == id:
			return s
		}
	}
}

func (t *connSet) after(s int) int {
	if s++; s == len(t.slots) {
		return 0
	}
	return s
}

func (t *connSet) get(id uint64) *connData {
	if s := t.find(id); s >= 0 {
		return t.slots[s]
	}
	return nil
}

// put adds cs, replacing the connection with the same id if there is one.
func (t *connSet) put(cs *connData) {
	if s := t.find(cs.conn.ID()); s >= 0 {
		t.slots[s] = cs
		return
	}
	t.n++
	if 4*t.n > 3*len(t.slots) {
		t.resize(max(minConnSlots, 2*len(t.slots)+1))
	}
	t.place(cs)
}

func (t *connSet) place(cs *connData) {
	s := t.home(cs.conn.ID())
	for t.slots[s] != nil {
		s = t.after(s)
	}
	t.slots[s] = cs
}

func (t *connSet) resize(size int) {
	old := t.slots
	t.slots = make([]*connData, size)
	t.walk = 0
	for _, cs := range old {
		if cs != nil {
			t.place(cs)
		}
	}
}

// del removes id's connection if it is there. The entries after its slot
// that would no longer be found move back (deletion without tombstones).
func (t *connSet) del(id uint64) {
	s := t.find(id)
	if s < 0 {
		return
	}
	for j := t.after(s); t.slots[j] != nil; j = t.after(j) {
		h := t.home(t.slots[j].conn.ID())
		// The entry at j may fill s unless its home lies cyclically in (s, j].
		if (j > s && (h <= s || h > j)) || (j < s && h <= s && h > j) {
			if s < t.walk && j >= t.walk {
				t.walk = s // it would jump over the walk
			}
			t.slots[s] = t.slots[j]
			s = j
		}
	}
	t.slots[s] = nil
	t.n--
	if len(t.slots) > minConnSlots && 8*t.n < len(t.slots) {
		t.resize(len(t.slots) / 2)
	}
}
