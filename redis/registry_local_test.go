package redis

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

func TestConnKeys(t *testing.T) {
	k := newConnKeys("gw.1")
	for id, want := range map[string]uint64{"gw.1.0": 0, "gw.1.7": 7, "gw.1.18446744073709551": 18446744073709551, "gw.1.9223372036854775807": 1<<63 - 1} {
		if n, ok := k.parse(id); !ok || n != want {
			t.Errorf("parse(%q) = %d, %v; want %d", id, n, ok, want)
		}
		if got := string(k.appendID(nil, want)); got != id {
			t.Errorf("appendID(%d) = %q, want %q", want, got, id)
		}
	}
	// Not of the hub's form: another instance, leading zeros, signs, too
	// big for a key, not a number.
	for _, id := range []string{"gw.2.7", "gw.1.", "gw.1.07", "gw.1.+7", "gw.1.-7", "gw.1.7x", "gw.1.9223372036854775808", "gw.1.99999999999999999999", "c1", "gw.17"} {
		if n, ok := k.parse(id); ok {
			t.Errorf("parse(%q) = %d, want no key of the hub's form", id, n)
		}
	}

	a, b := k.assign("c1"), k.assign("gw.1.07")
	if a&foreignBit == 0 || b&foreignBit == 0 || a == b {
		t.Fatalf("foreign keys %x %x", a, b)
	}
	if again := k.assign("c1"); again != a {
		t.Fatalf("assign twice: %x then %x", a, again)
	}
	if got := string(k.appendID([]byte("x:"), a)); got != "x:c1" {
		t.Fatalf("appendID of a foreign key: %q", got)
	}
	if n := k.assign("gw.1.42"); n != 42 || len(k.ids) != 2 {
		t.Fatalf("assign of the hub's form: %d, %d foreign ids stored", n, len(k.ids))
	}
	k.release(a)
	k.release(42) // nothing stored for it
	if _, ok := k.lookup("c1"); ok || len(k.ids) != 1 || len(k.names) != 1 {
		t.Fatalf("after release: %v %v", k.ids, k.names)
	}
	if c := k.assign("c1"); c == a {
		t.Fatal("a released key was handed out again")
	}
}

// regLocal against a map, through growth to many pages and back.
func TestRegLocal(t *testing.T) {
	var l regLocal
	ref := map[uint64]regEntry{}
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(when string) {
		t.Helper()
		if l.len() != len(ref) {
			t.Fatalf("%s: len %d, want %d", when, l.len(), len(ref))
		}
		seen := map[uint64]bool{}
		for i := range l.len() {
			e := l.at(i)
			if want, ok := ref[e.key]; !ok || *e != want || seen[e.key] {
				t.Fatalf("%s: entry %d is %+v (want %+v, listed %v, seen %v)", when, i, *e, want, ok, seen[e.key])
			}
			seen[e.key] = true
			if g := l.get(e.key); g != e {
				t.Fatalf("%s: get(%d) does not find position %d", when, e.key, i)
			}
		}
		if want := (l.len() + pageSize - 1) / pageSize; len(l.pages) != want {
			t.Fatalf("%s: %d pages for %d entries", when, len(l.pages), l.len())
		}
		if len(l.slots) > minSlots && 8*l.len() < len(l.slots) || 4*l.len() > 3*len(l.slots) {
			t.Fatalf("%s: %d slots for %d entries", when, len(l.slots), l.len())
		}
	}
	var next uint64 = 1
	add := func() {
		// Mostly ascending (the hub's numbering), some foreign keys.
		key := next
		if rng.IntN(10) == 0 {
			key |= foreignBit
		}
		next += 1 + uint64(rng.IntN(3))
		e := regEntry{key: key, at: rng.Int64N(1 << 42), user: "u" + strconv.Itoa(rng.IntN(5))}
		l.add(e)
		ref[key] = e
	}
	remove := func() {
		for key, want := range ref { // any one
			got, ok := l.remove(key)
			if !ok || got != want {
				t.Fatalf("remove(%d) = %+v, %v; want %+v", key, got, ok, want)
			}
			delete(ref, key)
			if l.get(key) != nil {
				t.Fatalf("get(%d) after remove", key)
			}
			return
		}
	}
	if _, ok := l.remove(5); ok || l.get(5) != nil {
		t.Fatal("empty table found a key")
	}
	for range 5000 {
		add()
	}
	check("after 5000 adds")
	for range 20000 { // churn
		if rng.IntN(2) == 0 {
			add()
		} else {
			remove()
		}
	}
	check("after churn")
	for len(ref) > 10 {
		remove()
	}
	check("after removing most")
	if len(l.slots) > minSlots {
		t.Fatalf("index kept %d slots for %d entries", len(l.slots), l.len())
	}
	for len(ref) > 0 {
		remove()
	}
	check("empty")
	if l.spare == nil || len(l.pages) != 0 {
		t.Fatalf("empty table: %d pages, spare %v", len(l.pages), l.spare != nil)
	}
	add()
	check("one again")
	if l.spare != nil {
		t.Fatal("the spare page was not reused")
	}
}

// The cursor visits every entry once per round, and wraps.
func TestRegLocalStep(t *testing.T) {
	var l regLocal
	for i := range 600 {
		l.add(regEntry{key: uint64(i)})
	}
	seen := map[uint64]int{}
	for range 2 * 600 {
		seen[l.step().key]++
	}
	for i := range 600 {
		if seen[uint64(i)] != 2 {
			t.Fatalf("entry %d refreshed %d times in two rounds", i, seen[uint64(i)])
		}
	}
	for i := range 590 {
		l.remove(uint64(i))
	}
	for range 25 { // the cursor was past the end
		if e := l.step(); e.key < 590 {
			t.Fatalf("step returned removed key %d", e.key)
		}
	}
}

// An entry written, then not: the complement keeps connected_at.
func TestRegEntryWritten(t *testing.T) {
	e := regEntry{at: ^int64(1700000000123)}
	if e.written() || e.connectedAt() != 1700000000123 {
		t.Fatalf("unwritten entry: %v %d", e.written(), e.connectedAt())
	}
	e.at = ^e.at
	if !e.written() || e.connectedAt() != 1700000000123 {
		t.Fatalf("written entry: %v %d", e.written(), e.connectedAt())
	}
}

// A batch buffer is kept while bursts use it and dropped after.
func TestKeep(t *testing.T) {
	small := make([]int, 10, keepOps)
	if got := keep(small); got == nil || len(got) != 0 || cap(got) != keepOps {
		t.Fatalf("a buffer within keepOps: %d/%d", len(got), cap(got))
	}
	big := make([]int, 4*keepOps)
	if got := keep(big[:keepOps]); got == nil || cap(got) != 4*keepOps {
		t.Fatal("a big buffer dropped while a quarter of it is in use")
	}
	if got := keep(big[:keepOps-1]); got != nil {
		t.Fatal("a big buffer kept after the burst")
	}
}
