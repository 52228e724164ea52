package eventloop

import (
	"testing"
	"time"
)

func TestFreeAfterDrop(t *testing.T) {
	var g memoryGuard
	g.init(0)
	released := 0
	g.release = func() { released++ }
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration, conns int64) { g.freeAfterDrop(t0.Add(d), conns) }

	at(0, 15000) // flood
	at(time.Second, 9000)
	at(2*time.Second, 3000) // a quarter of the peak: wait for it to settle
	if released != 0 {
		t.Fatal("released before the drop settled")
	}
	at(2500*time.Millisecond, 100)
	at(3*time.Second, 0)
	if released != 1 {
		t.Fatalf("released %d times after the flood went, want 1", released)
	}
	at(4*time.Second, 0) // no second release for the same drop
	if released != 1 {
		t.Fatalf("released %d times, want 1", released)
	}

	// A second flood soon after waits for releaseEvery.
	at(5*time.Second, 12000)
	at(6*time.Second, 0)
	at(8*time.Second, 0)
	if released != 1 {
		t.Fatalf("released %d times within releaseEvery, want 1", released)
	}
	at(3*time.Second+releaseEvery, 0)
	at(3*time.Second+releaseEvery+dropSettle, 0)
	if released != 2 {
		t.Fatalf("released %d times after releaseEvery, want 2", released)
	}

	// Small drops and drops to more than a quarter release nothing.
	var h memoryGuard
	h.init(0)
	h.release = func() { released++ }
	for i, c := range []int64{3000, 0, 0, 0, 20000, 6000, 6000, 6000} {
		h.freeAfterDrop(t0.Add(time.Duration(i)*time.Second), c)
	}
	if released != 2 {
		t.Fatalf("released on a small drop or a drop to 30%%: %d", released)
	}
}

func TestFreeAfterBurst(t *testing.T) {
	var g memoryGuard
	g.init(0)
	released := 0
	g.release = func() { released++ }
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration, opened uint64) { g.freeAfterBurst(t0.Add(d), opened) }

	at(0, 0)
	at(100*time.Millisecond, 3000)
	at(200*time.Millisecond, 19000) // a burst of upgrades
	at(700*time.Millisecond, 19000)
	if released != 0 {
		t.Fatal("released before the burst settled")
	}
	at(1700*time.Millisecond, 19000) // still for a second since 700 ms
	if released != 1 {
		t.Fatalf("released %d times once the burst settled, want 1", released)
	}
	at(3*time.Second, 19000)
	if released != 1 {
		t.Fatalf("released %d times for one burst, want 1", released)
	}
	// Fewer than dropMin new connections since: nothing to give back.
	at(40*time.Second, 19000+dropMin-1)
	at(42*time.Second, 19000+dropMin-1)
	if released != 1 {
		t.Fatalf("released %d times after a small burst, want 1", released)
	}
	// A steady trickle never settles, so it never forces a collection.
	for i := range 100 {
		at(50*time.Second+time.Duration(i)*500*time.Millisecond, 30000+uint64(i))
	}
	if released != 1 {
		t.Fatalf("released %d times under a steady trickle, want 1", released)
	}
	at(200*time.Second, 30099)
	at(201*time.Second, 30099)
	if released != 2 {
		t.Fatalf("released %d times once the trickle stopped, want 2", released)
	}
}
