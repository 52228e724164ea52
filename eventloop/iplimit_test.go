package eventloop

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

func key(s string) ipKey { return ipKeyOf(netip.MustParseAddr(s)) }

// v4 is the n-th IPv4 address from 10.0.0.0.
func v4(n uint32) ipKey {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], 0x0a000000+n)
	return ipKeyOf(netip.AddrFrom4(b))
}

func TestIPKeyGroupsSources(t *testing.T) {
	same := [][2]string{
		{"192.0.2.1", "::ffff:192.0.2.1"},           // IPv4-mapped is the IPv4 address
		{"2001:db8::1", "2001:db8::ffff:abcd:1"},    // one /64
		{"2001:db8:0:7::1", "2001:db8:0:7:8:9:a:b"}, // one /64
		{"fe80::1%eth0", "fe80::2"},                 // the zone plays no part
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"},  // /64 boundary
		{"::1", "::2"},                                // ::/64 still a source
		{"10.1.2.3", "::ffff:10.1.2.3"},               // same again
		{"2001:db8::", "2001:0db8:0000:0000:ffff::1"}, // spelling
	}
	for _, p := range same {
		if key(p[0]) != key(p[1]) {
			t.Errorf("%s and %s are different sources", p[0], p[1])
		}
	}
	differ := [][2]string{
		{"192.0.2.1", "192.0.2.2"},
		{"2001:db8::1", "2001:db8:0:1::1"}, // next /64
		{"0.0.0.0", "::"},                  // an IPv4 key never equals an IPv6 /64
		{"0.0.0.1", "::1"},
		{"255.255.255.255", "::ffff:0:0:0"},
	}
	for _, p := range differ {
		if key(p[0]) == key(p[1]) {
			t.Errorf("%s and %s are the same source", p[0], p[1])
		}
	}

	// From gnet's addresses: 4-byte and 16-byte IPs alike, nothing for a
	// Unix socket, no allocation.
	a4 := &net.TCPAddr{IP: net.IP{192, 0, 2, 1}, Port: 1}
	a16 := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 2}
	k4, ok4 := remoteKey(a4)
	k16, ok16 := remoteKey(a16)
	if !ok4 || !ok16 || k4 != k16 || k4 != key("192.0.2.1") {
		t.Errorf("remoteKey: %v %v, %v %v", k4, ok4, k16, ok16)
	}
	if _, ok := remoteKey(&net.UnixAddr{Name: "/tmp/x", Net: "unix"}); ok {
		t.Error("a Unix peer has a source")
	}
	if _, ok := remoteKey(&net.TCPAddr{IP: net.IP{1, 2, 3}}); ok {
		t.Error("a 3-byte IP has a source")
	}
	var addr net.Addr = a16
	if n := testing.AllocsPerRun(100, func() { remoteKey(addr) }); n != 0 {
		t.Errorf("remoteKey allocates %v times", n)
	}
}

func TestIPLimitConns(t *testing.T) {
	l := newIPLimiter(2, 0, 100)
	a, b := key("192.0.2.1"), key("2001:db8::1")
	for i := range 2 {
		if v, _ := l.admit(a, 0); v != ipAdmitted {
			t.Fatalf("connection %d refused: %v", i, v)
		}
	}
	if v, retry := l.admit(a, 0); v != ipOverConns || retry != ipConnsRetryAfter {
		t.Fatalf("third connection: %v, retry %d", v, retry)
	}
	if v, _ := l.admit(key("2001:db8::2"), 0); v != ipAdmitted { // another address of b's /64
		t.Fatalf("other source refused: %v", v)
	}
	if v, _ := l.admit(b, 0); v != ipAdmitted {
		t.Fatalf("b's second connection refused: %v", v)
	}
	if v, _ := l.admit(b, 0); v != ipOverConns {
		t.Fatalf("b's /64 over its limit: %v", v)
	}
	l.release(a, 0)
	if v, _ := l.admit(a, 0); v != ipAdmitted {
		t.Fatalf("after a release: %v", v)
	}
	if got := l.entries(); got != 2 {
		t.Fatalf("%d entries, want 2", got)
	}
	// Without rate state, an entry goes with its last connection.
	for range 2 {
		l.release(a, 0)
		l.release(b, 0)
	}
	if got := l.entries(); got != 0 {
		t.Fatalf("%d entries after every release, want 0", got)
	}
	l.release(a, 0) // not counted: nothing happens
	if got := l.entries(); got != 0 {
		t.Fatalf("%d entries, want 0", got)
	}
}

func TestIPLimitRate(t *testing.T) {
	const s = int64(time.Second)
	a := key("192.0.2.1")
	t0 := 100 * s

	// 3/s: a burst of 3, then one every third of a second.
	l := newIPLimiter(0, 3, 100)
	for i := range 3 {
		if v, _ := l.admit(a, t0); v != ipAdmitted {
			t.Fatalf("burst %d refused: %v", i, v)
		}
	}
	interval := s / 3
	for _, at := range []int64{t0, t0 + interval - 1} { // a refusal costs nothing
		if v, retry := l.admit(a, at); v != ipOverRate || retry != 1 {
			t.Fatalf("over the burst at +%v: %v, retry %d", time.Duration(at-t0), v, retry)
		}
	}
	if v, _ := l.admit(key("192.0.2.2"), t0); v != ipAdmitted {
		t.Fatalf("another source refused: %v", v)
	}
	if v, _ := l.admit(a, t0+interval); v != ipAdmitted {
		t.Fatalf("one interval later: %v", v)
	}
	if v, _ := l.admit(a, t0+interval); v != ipOverRate {
		t.Fatalf("a second one at once: %v", v)
	}
	for i := range 3 { // the bucket refilled
		if v, _ := l.admit(a, t0+10*s); v != ipAdmitted {
			t.Fatalf("burst %d after a pause refused: %v", i, v)
		}
	}

	// Retry-After is the wait, rounded up to whole seconds.
	for _, tc := range []struct {
		rate  float64
		burst int
		wait  []int // Retry-After at t0, t0+1s, t0+2s... until admitted
	}{
		{0.5, 1, []int{2, 1}},
		{0.25, 1, []int{4, 3, 2, 1}},
		{2.5, 3, []int{1}},
		{0.01, 1, nil}, // 100 s: checked below
	} {
		l := newIPLimiter(0, tc.rate, 100)
		for i := range tc.burst {
			if v, _ := l.admit(a, t0); v != ipAdmitted {
				t.Fatalf("rate %v: burst %d refused: %v", tc.rate, i, v)
			}
		}
		for i, want := range tc.wait {
			if v, retry := l.admit(a, t0+int64(i)*s); v != ipOverRate || retry != want {
				t.Fatalf("rate %v at +%ds: %v, retry %d, want %d", tc.rate, i, v, retry, want)
			}
		}
		if tc.wait == nil {
			if _, retry := l.admit(a, t0); retry != 100 {
				t.Fatalf("rate %v: retry %d, want 100", tc.rate, retry)
			}
			continue
		}
		if v, _ := l.admit(a, t0+int64(len(tc.wait))*s); v != ipAdmitted {
			t.Fatalf("rate %v: not admitted after the wait: %v", tc.rate, v)
		}
	}

	// Both limits: a refusal at the connection limit spends no token.
	l = newIPLimiter(1, 2, 100)
	if v, _ := l.admit(a, t0); v != ipAdmitted {
		t.Fatal(v)
	}
	if v, _ := l.admit(a, t0); v != ipOverConns {
		t.Fatalf("at the connection limit: %v", v)
	}
	l.release(a, t0)
	if v, _ := l.admit(a, t0); v != ipAdmitted {
		t.Fatalf("second token: %v", v)
	}
	l.release(a, t0)
	if v, _ := l.admit(a, t0); v != ipOverRate {
		t.Fatalf("third upgrade in the same instant: %v", v)
	}
}

func TestIPLimitSweep(t *testing.T) {
	const s = int64(time.Second)
	l := newIPLimiter(1, 1, 1<<16)
	for i := range uint32(20000) {
		l.admit(v4(i), 0)
		if i%2 == 0 {
			l.release(v4(i), 0) // rate state only
		}
	}
	grown := l.slotsLen()
	sweepAll := func(now int64) {
		for range ipStripes {
			l.sweep(now)
		}
	}
	sweepAll(s - 1) // every bucket still refilling
	if got := l.entries(); got != 20000 {
		t.Fatalf("%d entries before the buckets refilled, want 20000", got)
	}
	sweepAll(s)
	if got := l.entries(); got != 10000 {
		t.Fatalf("%d entries once the buckets refilled, want the 10000 with a connection", got)
	}
	for i := uint32(1); i < 20000; i += 2 {
		if v, _ := l.admit(v4(i), 2*s); v != ipOverConns {
			t.Fatalf("source %d lost its connection count in the sweep: %v", i, v)
		}
	}
	for i := uint32(1); i < 20000; i += 2 {
		l.release(v4(i), 2*s) // idle: forgotten at once
	}
	if got := l.entries(); got != 0 {
		t.Fatalf("%d entries, want 0", got)
	}
	sweepAll(2 * s)
	if got, want := l.slotsLen(), ipStripes*ipMinSlots; got != want || grown <= want {
		t.Fatalf("slots %d after the sweep (%d grown), want %d", got, grown, want)
	}
}

// A flood from a million addresses keeps the table within its capacity,
// never drops a connection count, and allocates nothing once at capacity.
func TestIPLimitFloodBounded(t *testing.T) {
	const s = int64(time.Second)
	const maxConns = 1000
	capacity := ipTableCapacity(maxConns)
	l := newIPLimiter(1, 1, capacity)
	maxSlots := ipStripes * l.maxSlots
	if l.maxEntries*ipStripes < capacity || maxSlots > 2*(capacity+ipStripes) {
		t.Fatalf("capacity %d: %d entries and %d slots per stripe", capacity, l.maxEntries, l.maxSlots)
	}
	// Sources holding connections: as many as MaxConns allows.
	pinned := make([]ipKey, maxConns)
	for i := range pinned {
		pinned[i] = ipKey{hi: 0x20010db8_00000000 | uint64(i)}
		if v, _ := l.admit(pinned[i], 0); v != ipAdmitted {
			t.Fatalf("pinned source %d: %v", i, v)
		}
	}
	// The flood: a million sources upgrading once within a second, each
	// connection closed at once, so each leaves rate state behind.
	now := int64(0)
	flood := func(i uint32) {
		now++
		k := v4(i)
		if v, _ := l.admit(k, now); v != ipAdmitted {
			t.Fatalf("flood source %d: %v (the table must evict rate state, not refuse)", i, v)
		}
		l.release(k, now)
	}
	n := uint32(1_000_000)
	if raceEnabled {
		n = 100_000 // still 20 times the capacity
	}
	for i := range n {
		flood(i)
		if i%100_000 == 0 {
			if e := l.entries(); e > l.maxEntries*ipStripes {
				t.Fatalf("after %d sources: %d entries, over %d", i, e, l.maxEntries*ipStripes)
			}
		}
	}
	if got := l.slotsLen(); got > maxSlots {
		t.Fatalf("%d slots after the flood, over %d", got, maxSlots)
	}
	t.Logf("%d sources into a table of %d: %d entries, %d slots (%d KiB), %d evictions", n, capacity,
		l.entries(), l.slotsLen(), l.slotsLen()*int(unsafe.Sizeof(ipEntry{}))>>10, l.evictions())
	if e := l.entries(); e > l.maxEntries*ipStripes || e < capacity/2 {
		t.Fatalf("%d entries after the flood, capacity %d", e, capacity)
	}
	if ev := l.evictions(); ev < uint64(n)-uint64(capacity)-ipStripes {
		t.Fatalf("%d evictions for %d sources in a table of %d", ev, n, capacity)
	}
	next := n
	if a := testing.AllocsPerRun(10000, func() { flood(next); next++ }); a != 0 {
		t.Fatalf("an upgrade into the full table allocates %v times", a)
	}
	for i, k := range pinned {
		if v, _ := l.admit(k, now); v != ipOverConns {
			t.Fatalf("pinned source %d lost its count to the flood: %v", i, v)
		}
	}
	// The latest sources keep their rate state; the oldest were forgotten
	// and start afresh, as new sources do.
	if v, _ := l.admit(v4(next-1), now); v != ipOverRate {
		t.Fatalf("latest flood source: %v", v)
	}
	if v, _ := l.admit(v4(0), now); v != ipAdmitted {
		t.Fatalf("first flood source: %v", v)
	}
	l.release(v4(0), now)
	// Once the flood is over, the table gives its memory back.
	for _, k := range pinned {
		l.release(k, now)
	}
	for range ipStripes {
		l.sweep(now + 2*s)
	}
	if e, slots := l.entries(), l.slotsLen(); e != 0 || slots != ipStripes*ipMinSlots {
		t.Fatalf("after the flood: %d entries, %d slots", e, slots)
	}
}

// A stripe whose every entry counts connections refuses a new source rather
// than admit it uncounted, and admits it once a connection there closes.
func TestIPLimitTableFull(t *testing.T) {
	l := newIPLimiter(1, 0, ipStripes) // one entry a stripe
	var held []ipKey
	var refused ipKey
	for i := range uint32(10 * ipStripes) {
		v, retry := l.admit(v4(i), 0)
		if v == ipTableFull {
			if retry != 1 {
				t.Fatalf("retry %d", retry)
			}
			refused = v4(i)
			break
		}
		if v != ipAdmitted {
			t.Fatal(v)
		}
		held = append(held, v4(i))
	}
	if refused == (ipKey{}) || len(held) > ipStripes {
		t.Fatalf("%d sources admitted in %d one-entry stripes, none refused", len(held), ipStripes)
	}
	for _, k := range held {
		l.release(k, 0)
	}
	if v, _ := l.admit(refused, 0); v != ipAdmitted {
		t.Fatalf("after the releases: %v", v)
	}
}

// Random admissions, releases and sweeps on a crowded table: every entry
// stays reachable (backward-shift deletion, eviction, resizing) and the
// connection counts match a plain map's.
func TestIPLimitMatchesModel(t *testing.T) {
	const perIP = 3
	rng := rand.New(rand.NewPCG(1, 2))
	l := newIPLimiter(perIP, 0.5, 8*ipStripes) // 8 entries, 16 slots a stripe
	model := map[ipKey]int{}
	var now int64
	check := func() {
		t.Helper()
		for si := range l.stripes {
			st := &l.stripes[si]
			used := 0
			for i, e := range st.slots {
				if !e.used {
					continue
				}
				used++
				if j, ok := st.find(e.key, l.hash(e.key)); !ok || j != i {
					t.Fatalf("stripe %d: entry at %d unreachable (found %d %v)", si, i, j, ok)
				}
				if int(e.conns) != model[e.key] {
					t.Fatalf("entry counts %d connections, model %d", e.conns, model[e.key])
				}
			}
			if used != st.n || st.n > l.maxEntries {
				t.Fatalf("stripe %d: %d used, n %d, max %d", si, used, st.n, l.maxEntries)
			}
		}
		for k, c := range model {
			h := l.hash(k)
			if i, ok := l.stripe(h).find(k, h); c > 0 && (!ok || int(l.stripe(h).slots[i].conns) != c) {
				t.Fatalf("source with %d connections missing", c)
			}
		}
	}
	for step := range 200_000 {
		now += int64(rng.IntN(int(2 * time.Millisecond)))
		k := v4(uint32(rng.IntN(2000)))
		switch r := rng.IntN(10); {
		case r < 6:
			v, _ := l.admit(k, now)
			switch {
			case v == ipAdmitted:
				model[k]++
			case (v == ipOverConns) != (model[k] >= perIP):
				t.Fatalf("step %d: %v with %d connections", step, v, model[k])
			}
		case r < 9:
			if model[k] > 0 {
				l.release(k, now)
				model[k]--
			}
		default:
			l.sweep(now)
		}
		if model[k] == 0 {
			delete(model, k)
		}
		if step%1000 == 0 {
			check()
		}
	}
	check()
	if l.evictions() == 0 {
		t.Fatal("no eviction: the table was not crowded")
	}
}

// The loops share the table: admissions and releases from several
// goroutines leave every count exact (run with -race).
func TestIPLimitConcurrent(t *testing.T) {
	l := newIPLimiter(1000, 0, 4096)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			var mine []ipKey
			for range 20000 {
				if len(mine) > 0 && rng.IntN(2) == 0 {
					l.release(mine[len(mine)-1], 0)
					mine = mine[:len(mine)-1]
					continue
				}
				k := v4(uint32(rng.IntN(512)))
				if v, _ := l.admit(k, 0); v == ipAdmitted {
					mine = append(mine, k)
				}
			}
			for _, k := range mine {
				l.release(k, 0)
			}
		})
	}
	var sweeps atomic.Bool
	sweeper := make(chan struct{})
	go func() {
		defer close(sweeper)
		for !sweeps.Load() {
			l.sweep(0)
		}
	}()
	wg.Wait()
	sweeps.Store(true)
	<-sweeper
	if e := l.entries(); e != 0 {
		t.Fatalf("%d entries once every connection was released", e)
	}
}

func BenchmarkIPLimitAdmit(b *testing.B) {
	const sources = 4096
	keys := make([]ipKey, sources)
	for i := range keys {
		keys[i] = v4(uint32(i))
	}
	b.Run("admit+release", func(b *testing.B) {
		l := newIPLimiter(8, 1e6, ipTableCapacity(1<<16))
		b.ReportAllocs()
		now := int64(0)
		for i := 0; b.Loop(); i++ {
			now += 1000
			k := keys[i&(sources-1)]
			l.admit(k, now)
			l.release(k, now)
		}
	})
	b.Run("refused", func(b *testing.B) {
		l := newIPLimiter(0, 1, ipTableCapacity(1<<16))
		for _, k := range keys {
			l.admit(k, 0)
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			l.admit(keys[i&(sources-1)], 1)
		}
	})
	b.Run("flood", func(b *testing.B) { // a new source each time, full table
		l := newIPLimiter(1, 1, ipTableCapacity(1<<10))
		b.ReportAllocs()
		for i := uint32(0); b.Loop(); i++ {
			k := v4(i)
			l.admit(k, int64(i))
			l.release(k, int64(i))
		}
	})
	b.Run("parallel", func(b *testing.B) {
		l := newIPLimiter(1<<20, 0, ipTableCapacity(1<<16))
		b.ReportAllocs()
		var seq atomic.Uint32
		b.RunParallel(func(pb *testing.PB) {
			i := seq.Add(1) * 7919
			for pb.Next() {
				k := keys[i&(sources-1)]
				l.admit(k, 0)
				l.release(k, 0)
				i++
			}
		})
	})
}
