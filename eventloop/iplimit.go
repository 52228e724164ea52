package eventloop

import (
	"encoding/binary"
	"math"
	"math/bits"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
)

// Per-source limits (Config.MaxConnsPerIP, Config.HandshakesPerIPPerS): at
// most MaxConnsPerIP upgraded connections per source, and upgrades at most
// HandshakesPerIPPerS a second with a burst of max(1, ceil(rate)); over
// either, the upgrade request is answered 429 with Retry-After and the
// socket closed. This file is the deterministic core, an ipLimiter: no
// goroutine, no clock (the time is passed in, nanoseconds on any monotonic
// clock). The runner is ipadmit.go: the upgrade, OnClose and OnTick.
//
// A source is an IPv4 address, or an IPv6 /64. IPv4-mapped IPv6 addresses
// (an IPv4 client on a dual-stack listener) are their IPv4 address. A /64 is
// what one IPv6 subscriber or host gets (SLAAC and its privacy addresses
// rotate inside it): limiting single /128s would let one host take 2^64
// fresh quotas, and fill the table with them. Hosts sharing one /64 share
// its quota, as hosts behind one IPv4 NAT do.
//
// Memory is bounded. The table has ipStripes stripes (a mutex each: the
// loops and the ticker share it) of open-addressing slots that grow with use
// up to a fixed capacity and shrink back as the sweep empties them, 32 B
// per slot, at most two slots per entry. An entry is pinned while it counts
// connections; otherwise it is only rate state, and a full stripe makes
// room for a new source by evicting one of those, preferring one whose
// bucket has refilled (it holds nothing worth keeping), else the one nearest
// to refilled in a short scan. So a flood from any number of addresses costs
// at most the capacity, and what it can make the table forget is rate state:
// the evicted source's next upgrade starts from a full bucket, as a new
// source does; the counts that bound connections are never dropped.
//
// Capacity (ipTableCapacity) is MaxConns plus a quarter (4096 at least):
// entries counting connections are at most MaxConns, so pinned entries alone
// cannot fill it, and the headroom keeps the rate state of that many
// connectionless sources. A stripe full of pinned entries would take a
// hash skew of at least a quarter over its share (the hash is seeded per process);
// should it happen, the upgrade is refused 429 ("ip_table_full") rather than
// admitted uncounted: the count of every upgraded connection stays exact, so
// each is released exactly once and no source's count drifts. Worst case,
// 64 bytes of slots per entry: 80 bytes per MaxConns (80 MiB for a million;
// 256 KiB at most under 16,384), and only under a flood from that many
// sources, since the stripes grow with use.
const (
	ipStripes     = 64
	ipStripeBits  = 6 // log2(ipStripes)
	ipMinSlots    = 16
	ipMinCapacity = 4096
	// ipEvictScan bounds the slots an eviction looks at once it has a
	// candidate.
	ipEvictScan = 32
	// ipConnsRetryAfter is the Retry-After of a refusal at MaxConnsPerIP:
	// a slot frees only when one of the source's connections closes, which
	// cannot be predicted; 5 s keeps a well-behaved client from hammering.
	ipConnsRetryAfter = 5
	// MaxHandshakesPerIPPerS is HandshakesPerIPPerS's ceiling.
	MaxHandshakesPerIPPerS = 1e6
)

// ipTableCapacity is the table's capacity in entries for maxConns.
func ipTableCapacity(maxConns int) int {
	return maxConns + max(maxConns/4, ipMinCapacity)
}

// ipKey is a source: an IPv4 address as its IPv4-mapped form, or an IPv6
// /64 (lo is then 0; an IPv4 key's lo never is).
type ipKey struct{ hi, lo uint64 }

// ipKeyOf returns a's source.
func ipKeyOf(a netip.Addr) ipKey {
	a = a.Unmap()
	b := a.As16()
	k := ipKey{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
	if !a.Is4() {
		k.lo = 0
	}
	return k
}

// remoteKey returns the source of a peer address; false for a peer that has
// no IP (a Unix socket). It does not allocate.
func remoteKey(a net.Addr) (ipKey, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return ipKey{}, false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return ipKey{}, false
	}
	return ipKeyOf(ip), true
}

// ipVerdict is admit's answer.
type ipVerdict uint8

const (
	ipAdmitted  ipVerdict = iota
	ipOverConns           // MaxConnsPerIP upgraded connections already
	ipOverRate            // the handshake bucket is empty
	ipTableFull           // no room for a new source (see above)
)

// ipEntry is one source. Its bucket is kept as GCRA's theoretical arrival
// time: the bucket is full when tat <= now, and an upgrade is admitted when
// tat-now <= tolerance, moving tat on by one interval. That is a token
// bucket in one integer.
type ipEntry struct {
	key   ipKey
	tat   int64  // nanoseconds; 0 when rate is not limited
	conns uint32 // upgraded connections counted; 0 when connections are not limited
	used  bool
}

// idle reports whether e holds nothing: no connection, a full bucket.
func (e *ipEntry) idle(now int64) bool { return e.conns == 0 && e.tat <= now }

// ipStripe is a share of the table; everything in it is guarded by mu.
type ipStripe struct {
	mu      sync.Mutex
	slots   []ipEntry // linear probing; at most half used
	n       int       // used slots
	hand    int       // where the next eviction scan starts
	evicted uint64    // entries evicted with rate state (tat > now)
	_       [64]byte  // keep neighbouring stripes' locks off one cache line
}

// ipLimiter is the per-source table. Its fields are fixed at construction
// except the stripes (each under its mutex) and sweepAt (the sweeper's:
// gnet's ticker goroutine).
type ipLimiter struct {
	maxConns   uint32 // per source; 0 = connections not counted
	interval   int64  // nanoseconds per handshake; 0 = rate not limited
	tolerance  int64  // (burst-1) intervals
	maxEntries int    // per stripe
	maxSlots   int    // per stripe: 2*maxEntries
	seed       [3]uint64
	stripes    [ipStripes]ipStripe
	sweepAt    int
}

// newIPLimiter makes a table of capacity entries; perIP or rate 0 turns
// that limit off. perIP, rate and capacity must be validated by the caller.
func newIPLimiter(perIP int, rate float64, capacity int) *ipLimiter {
	l := &ipLimiter{
		maxConns:   uint32(min(perIP, math.MaxUint32)),
		maxEntries: max((capacity+ipStripes-1)/ipStripes, 1),
		seed:       [3]uint64{rand.Uint64(), rand.Uint64(), rand.Uint64()},
	}
	l.maxSlots = 2 * l.maxEntries
	if rate > 0 {
		l.interval = max(int64(min(1e9/rate, 1<<62)), 1)
		burst := max(1, math.Ceil(rate))
		l.tolerance = int64(burst-1) * l.interval
	}
	for i := range l.stripes {
		l.stripes[i].slots = make([]ipEntry, min(ipMinSlots, l.maxSlots))
	}
	return l
}

// counts reports whether admitted connections are counted, and so must be
// released.
func (l *ipLimiter) counts() bool { return l.maxConns > 0 }

// hash is seeded per limiter: addresses an attacker picks cannot be aimed
// at one stripe or one probe chain.
func (l *ipLimiter) hash(k ipKey) uint64 {
	hi, lo := bits.Mul64(k.hi^l.seed[0], k.lo^l.seed[1])
	hi, lo = bits.Mul64(hi^lo, l.seed[2]|1)
	return hi ^ lo
}

func (l *ipLimiter) stripe(h uint64) *ipStripe { return &l.stripes[h>>(64-ipStripeBits)] }

// admit decides on an upgrade from k at now. When it admits and counts()
// is true, one connection is counted for k, which release must give back.
// retryAfter is in seconds, at least 1, when it refuses.
func (l *ipLimiter) admit(k ipKey, now int64) (v ipVerdict, retryAfter int) {
	h := l.hash(k)
	st := l.stripe(h)
	st.mu.Lock()
	defer st.mu.Unlock()
	i, found := st.find(k, h)
	var e *ipEntry
	if found {
		e = &st.slots[i]
		if l.maxConns > 0 && e.conns >= l.maxConns {
			return ipOverConns, ipConnsRetryAfter
		}
	}
	var tat int64
	if l.interval > 0 {
		t := now
		if e != nil {
			t = max(e.tat, now)
		}
		if wait := t - now - l.tolerance; wait > 0 {
			return ipOverRate, int(min((wait+1e9-1)/1e9, math.MaxInt32))
		}
		tat = t + l.interval
	}
	if e == nil {
		if e = st.insert(l, k, h, now); e == nil {
			return ipTableFull, 1
		}
	}
	e.tat = tat
	if l.maxConns > 0 {
		e.conns++
	}
	return ipAdmitted, 0
}

// release gives back a connection admit counted for k, forgetting k once
// it holds nothing.
func (l *ipLimiter) release(k ipKey, now int64) {
	h := l.hash(k)
	st := l.stripe(h)
	st.mu.Lock()
	defer st.mu.Unlock()
	i, found := st.find(k, h)
	if !found || st.slots[i].conns == 0 {
		return // cannot happen: a counted entry is never evicted
	}
	e := &st.slots[i]
	e.conns--
	if e.idle(now) {
		st.remove(l, i)
	}
}

// sweep forgets the idle entries of one stripe per call, in turn, and
// shrinks a stripe left sparse. The ticker calls it: a whole pass takes
// ipStripes ticks. It holds the stripe's lock while it scans; a stripe is at
// most 2*capacity/ipStripes slots, 40,960 for a million MaxConns.
func (l *ipLimiter) sweep(now int64) {
	st := &l.stripes[l.sweepAt]
	l.sweepAt = (l.sweepAt + 1) % ipStripes
	st.mu.Lock()
	defer st.mu.Unlock()
	for i := 0; i < len(st.slots); {
		if e := &st.slots[i]; e.used && e.idle(now) {
			st.remove(l, i) // may move a later entry into i: look again
			continue
		}
		i++
	}
	size := len(st.slots)
	for size > ipMinSlots && st.n < size/8 {
		size /= 2
	}
	if size < len(st.slots) {
		st.resize(l, max(size, ipMinSlots))
	}
}

// entries is the number of sources held, for the gauge.
func (l *ipLimiter) entries() int {
	n := 0
	for i := range l.stripes {
		st := &l.stripes[i]
		st.mu.Lock()
		n += st.n
		st.mu.Unlock()
	}
	return n
}

// evictions is the number of entries evicted with rate state.
func (l *ipLimiter) evictions() uint64 {
	var n uint64
	for i := range l.stripes {
		st := &l.stripes[i]
		st.mu.Lock()
		n += st.evicted
		st.mu.Unlock()
	}
	return n
}

// slotsLen is the slots held by every stripe (tests: the memory bound).
func (l *ipLimiter) slotsLen() int {
	n := 0
	for i := range l.stripes {
		st := &l.stripes[i]
		st.mu.Lock()
		n += len(st.slots)
		st.mu.Unlock()
	}
	return n
}

// home is the slot k's probe sequence starts from.
func (st *ipStripe) home(h uint64) int {
	return int(uint64(uint32(h)) * uint64(len(st.slots)) >> 32)
}

// find returns k's slot, or the free slot where it would go.
func (st *ipStripe) find(k ipKey, h uint64) (int, bool) {
	i := st.home(h)
	for {
		e := &st.slots[i]
		if !e.used {
			return i, false
		}
		if e.key == k {
			return i, true
		}
		if i++; i == len(st.slots) {
			i = 0
		}
	}
}

// insert adds k, growing the stripe or evicting to make room; nil when
// every candidate counts connections.
func (st *ipStripe) insert(l *ipLimiter, k ipKey, h uint64, now int64) *ipEntry {
	if st.n+1 > len(st.slots)/2 && len(st.slots) < l.maxSlots {
		st.resize(l, min(2*len(st.slots), l.maxSlots))
	}
	if st.n >= l.maxEntries && !st.evict(l, now) {
		return nil
	}
	i, _ := st.find(k, h)
	st.slots[i] = ipEntry{key: k, used: true}
	st.n++
	return &st.slots[i]
}

// evict removes one entry that counts no connection: the first idle one
// from the hand, else, among the candidates seen within ipEvictScan slots
// of the first, the one whose bucket is nearest to full.
func (st *ipStripe) evict(l *ipLimiter, now int64) bool {
	best, seen := -1, 0
	i := st.hand
	for range len(st.slots) {
		if i >= len(st.slots) {
			i = 0
		}
		if e := &st.slots[i]; e.used && e.conns == 0 {
			if e.tat <= now {
				best = i
				break
			}
			if best < 0 || e.tat < st.slots[best].tat {
				best = i
			}
		}
		if best >= 0 {
			if seen++; seen > ipEvictScan {
				break
			}
		}
		i++
	}
	if best < 0 {
		return false
	}
	if st.slots[best].tat > now {
		st.evicted++
	}
	st.hand = best + 1
	st.remove(l, best)
	return true
}

// remove empties slot i, moving later entries of its probe chain back so
// that every entry stays reachable from its home (backward-shift deletion).
func (st *ipStripe) remove(l *ipLimiter, i int) {
	n := len(st.slots)
	hole, j := i, i
	for {
		if j++; j == n {
			j = 0
		}
		e := &st.slots[j]
		if !e.used {
			break
		}
		// e may fill the hole unless its home lies cyclically in (hole, j].
		k := st.home(l.hash(e.key))
		if hole <= j && (k <= hole || k > j) || hole > j && k <= hole && k > j {
			st.slots[hole] = *e
			hole = j
		}
	}
	st.slots[hole] = ipEntry{}
	st.n--
}

// resize rehashes the stripe into size slots.
func (st *ipStripe) resize(l *ipLimiter, size int) {
	old := st.slots
	st.slots = make([]ipEntry, size)
	st.hand = 0
	for i := range old {
		if e := &old[i]; e.used {
			j, _ := st.find(e.key, l.hash(e.key))
			st.slots[j] = *e
		}
	}
}
