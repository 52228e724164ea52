package hub

import (
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"
)

// connData fills the 80-byte size class: one field more must find room in
// the padding (or pay 16 bytes a connection).
func TestConnDataSize(t *testing.T) {
	if n := unsafe.Sizeof(connData{}); n != 80 {
		t.Fatalf("connData is %d bytes, want 80", n)
	}
}

// The Registrar's walk, in small steps while connections come and go
// (growing, shrinking and shifting the stripes' tables): each round meets
// every connection that was there all along, and reads what register set.
func TestConnIndexWalk(t *testing.T) {
	x := newConnIndex()
	rng := rand.New(rand.NewPCG(5, 6))
	live := map[uint64]bool{}
	next := uint64(1)
	add := func() {
		cs := &connData{conn: &fakeConn{id: next}, listed: x.stamp()}
		x.put(next, cs)
		live[next] = true
		next++
	}
	del := func() {
		for id := range live {
			x.del(id)
			delete(live, id)
			return
		}
	}
	for range 300 {
		add()
	}
	var buf []LocalConn
	for round := range 30 {
		// The connections there from the start of the round to its end.
		stay := map[uint64]bool{}
		for id := range live {
			stay[id] = true
		}
		seen := map[uint64]bool{}
		for wrapped := false; !wrapped; {
			buf, wrapped = x.Next(buf[:0], 1+rng.IntN(12))
			for _, c := range buf {
				if !live[c.N] {
					t.Fatalf("round %d: walked %d, which is gone", round, c.N)
				}
				if c.ConnectedAt < x.bornMs || c.ConnectedAt > time.Now().UnixMilli() {
					t.Fatalf("round %d: %d connected at %d, born %d", round, c.N, c.ConnectedAt, x.bornMs)
				}
				seen[c.N] = true
			}
			// Churn, leaning to growth in early rounds and to shrinking
			// in later ones, so that tables resize under the walk.
			for range rng.IntN(8) {
				if rng.IntN(30) < 30-round {
					add()
				} else {
					del()
				}
			}
		}
		for id := range stay {
			// Numbers are not reused: live at the end, live all along.
			if live[id] && !seen[id] {
				t.Fatalf("round %d: %d was there all along and not walked (%d live)", round, id, len(live))
			}
		}
		if got := x.Len(); got != len(live) {
			t.Fatalf("Len %d, want %d", got, len(live))
		}
	}
	n := 0
	for i := range x.Parts() {
		for _, c := range x.Part(buf[:0], i) {
			if !live[c.N] || !x.Has(c.N) {
				t.Fatalf("Part %d read %d, which is gone", i, c.N)
			}
			n++
		}
	}
	if n != len(live) {
		t.Fatalf("Parts read %d connections, want %d", n, len(live))
	}
}
