package redis

import (
	"math/bits"
	"strconv"
	"strings"
)

// The registry writer's record of the connections given to Registry.Add
// (the hub's it does not keep: it walks the hub's own record, so that a
// connection costs one record, not two), kept compact because it is
// per-connection memory (the gateway's bar is 1 KiB of idle RSS per
// connection, registry included): an entry is 32 bytes plus one index
// slot, and an id of the hub's form is not stored at all.

// foreignBit marks the keys of ids that are not of the hub's form.
const foreignBit = 1 << 63

// connKeys turns connection ids into the writer's uint64 keys and back. An
// id of the hub's form, "<instance>.<n>" with n in canonical decimal below
// 2^63, is the key n: nothing is stored for it. Any other id (the Registry
// takes any string) gets a key with foreignBit set, remembered until
// release. Owned by the writer's run goroutine.
type connKeys struct {
	prefix string            // "<instance>."; set once
	ids    map[string]uint64 // foreign id -> key
	names  map[uint64]string // key -> foreign id
	last   uint64            // the last foreign key handed out, without foreignBit
}

func newConnKeys(instance string) connKeys {
	return connKeys{prefix: instance + ".", ids: make(map[string]uint64), names: make(map[uint64]string)}
}

// parse returns the key of an id of the hub's form.
func (k *connKeys) parse(id string) (uint64, bool) {
	s, ok := strings.CutPrefix(id, k.prefix)
	if !ok || s == "" || len(s) > 19 || s[0] == '0' && len(s) > 1 {
		return 0, false
	}
	var n uint64 // 19 digits cannot overflow
	for i := 0; i < len(s); i++ {
		d := s[i] - '0'
		if d > 9 {
			return 0, false
		}
		n = n*10 + uint64(d)
	}
	return n, n < foreignBit
}

// lookup returns id's key if it has one.
func (k *connKeys) lookup(id string) (uint64, bool) {
	if n, ok := k.parse(id); ok {
		return n, true
	}
	key, ok := k.ids[id]
	return key, ok
}

// assign returns id's key, giving a foreign id a new one if it has none.
func (k *connKeys) assign(id string) uint64 {
	if key, ok := k.lookup(id); ok {
		return key
	}
	k.last++
	key := foreignBit | k.last
	k.ids[id], k.names[key] = key, id
	return key
}

// release forgets a foreign key (the entry it named is gone).
func (k *connKeys) release(key uint64) {
	if key&foreignBit != 0 {
		delete(k.ids, k.names[key])
		delete(k.names, key)
	}
}

// appendID appends the id of key.
func (k *connKeys) appendID(b []byte, key uint64) []byte {
	if key&foreignBit != 0 {
		return append(b, k.names[key]...)
	}
	return strconv.AppendUint(append(b, k.prefix...), key, 10)
}

// regEntry is one local connection.
type regEntry struct {
	key  uint64 // from connKeys
	at   int64  // connected_at, unix ms; its complement (negative) until the batch that added it is written
	user string // shares the caller's bytes
}

func (e *regEntry) written() bool      { return e.at >= 0 }
func (e *regEntry) connectedAt() int64 { return max(e.at, ^e.at) }

// regLocal holds the local connections, about 39 bytes each: the entries,
// dense, in pages (walked by the refresh cursor; growing never copies them),
// and an open-addressing index of their positions by key (4 bytes a slot,
// at most 3/4 full). Both give memory back as connections leave: an empty
// page is freed (one spare kept), and the index halves when it is 1/8 full.
// Owned by the writer's run goroutine.
type regLocal struct {
	pages  [][]regEntry // each pageSize entries; entry i is pages[i/pageSize][i%pageSize]
	n      int          // entries
	spare  []regEntry   // an emptied page, kept so that one connection coming and going at a page boundary does not allocate
	slots  []uint32     // position+1 of an entry, 0 for empty; len is a power of two (or 0)
	cursor int          // next position to refresh
}

const (
	// pageSize entries per page: 8160 bytes, plus the 8-byte header Go
	// gives an object with pointers, fill the 8 KiB size class (256 would
	// take the next, 9472).
	pageSize = 255
	minSlots = 64 // the index never shrinks below
)

func (l *regLocal) len() int { return l.n }

// at returns the entry at position i; the pointer is valid until the next
// add or remove.
func (l *regLocal) at(i int) *regEntry { return &l.pages[i/pageSize][i%pageSize] }

// home is the first slot to look at for key (Fibonacci hashing: keys that
// follow each other spread over the table).
func (l *regLocal) home(key uint64) int {
	return int((key * 0x9E3779B97F4A7C15) >> (64 - bits.Len(uint(len(l.slots)-1))))
}

// find returns the slot holding key, or -1.
func (l *regLocal) find(key uint64) int {
	if l.n == 0 {
		return -1
	}
	mask := len(l.slots) - 1
	for s := l.home(key); ; s = (s + 1) & mask {
		v := l.slots[s]
		if v == 0 {
			return -1
		}
		if l.at(int(v-1)).key == key {
			return s
		}
	}
}

// place puts position i (whose entry is in place) into the index.
func (l *regLocal) place(i int) {
	mask := len(l.slots) - 1
	s := l.home(l.at(i).key)
	for l.slots[s] != 0 {
		s = (s + 1) & mask
	}
	l.slots[s] = uint32(i + 1)
}

// resize rebuilds the index with size slots.
func (l *regLocal) resize(size int) {
	l.slots = make([]uint32, size)
	for i := range l.n {
		l.place(i)
	}
}

// get returns the entry of key, or nil; the pointer is valid until the next
// add or remove.
func (l *regLocal) get(key uint64) *regEntry {
	if s := l.find(key); s >= 0 {
		return l.at(int(l.slots[s] - 1))
	}
	return nil
}

// add records e, whose key must not be present.
func (l *regLocal) add(e regEntry) {
	if l.n%pageSize == 0 && l.n/pageSize == len(l.pages) {
		p := l.spare
		if p == nil {
			p = make([]regEntry, pageSize)
		}
		l.spare = nil
		l.pages = append(l.pages, p)
	}
	*l.at(l.n) = e
	l.n++
	if 4*l.n > 3*len(l.slots) {
		l.resize(max(minSlots, 2*len(l.slots)))
	} else {
		l.place(l.n - 1)
	}
}

// remove drops key's entry and returns it; the last entry takes its place.
func (l *regLocal) remove(key uint64) (regEntry, bool) {
	s := l.find(key)
	if s < 0 {
		return regEntry{}, false
	}
	i := int(l.slots[s] - 1)
	e := *l.at(i)
	l.unslot(s)
	last := l.n - 1
	if i != last {
		moved := l.at(last)
		l.slots[l.find(moved.key)] = uint32(i + 1)
		*l.at(i) = *moved
	}
	*l.at(last) = regEntry{}
	l.n--
	if k := l.n / pageSize; l.n%pageSize == 0 {
		// The last page emptied: it becomes the spare.
		l.spare = l.pages[k]
		l.pages[k] = nil
		l.pages = l.pages[:k]
	}
	if len(l.slots) > minSlots && 8*l.n < len(l.slots) {
		l.resize(len(l.slots) / 2)
	}
	return e, true
}

// unslot empties slot s, moving back the entries after it that would no
// longer be found (linear probing's deletion, which leaves no tombstones).
func (l *regLocal) unslot(s int) {
	mask := len(l.slots) - 1
	for j := (s + 1) & mask; l.slots[j] != 0; j = (j + 1) & mask {
		h := l.home(l.at(int(l.slots[j] - 1)).key)
		// The entry at j may fill s unless its home lies cyclically in (s, j].
		if (j > s && (h <= s || h > j)) || (j < s && h <= s && h > j) {
			l.slots[s] = l.slots[j]
			s = j
		}
	}
	l.slots[s] = 0
}

// step returns the entry at the refresh cursor and moves the cursor on,
// wrapping around; there must be an entry. The pointer is valid until the
// next add or remove.
func (l *regLocal) step() *regEntry {
	if l.cursor >= l.n {
		l.cursor = 0
	}
	l.cursor++
	return l.at(l.cursor - 1)
}
