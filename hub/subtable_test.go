package hub

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// recEvents records subscription outcomes delivered by the subscription table.
type recEvents struct{ confirmedIDs, failedIDs []uint64 }

func (e *recEvents) confirmed(_ *loopSubs, m *member) { e.confirmedIDs = append(e.confirmedIDs, m.id) }
func (e *recEvents) failed(m *member)                 { e.failedIDs = append(e.failedIDs, m.id) }

type regFixture struct {
	t     *testing.T
	r     *subTable
	b     *fakeBroker
	ev    *recEvents
	loops []*queueLoop
	next  uint64
}

func newRegFixture(t *testing.T, nloops int, hold bool) *regFixture {
	f := &regFixture{t: t, b: newFakeBroker(), ev: &recEvents{}}
	f.b.hold = hold
	posters := make([]Poster, nloops)
	for i := range posters {
		l := &queueLoop{}
		f.loops = append(f.loops, l)
		posters[i] = l
	}
	f.r = newSubTable(f.b, posters, f.ev)
	return f
}

func (f *regFixture) conn(loop int) *connData {
	f.next++
	c := &fakeConn{id: f.next, loop: loop}
	return &connData{conn: c, loop: uint16(loop)}
}

func (f *regFixture) sub(cs *connData, ch string, id uint64) subResult {
	f.t.Helper()
	res := f.r.subscribe(cs, []byte(ch), id, mHasID)
	f.check()
	return res
}

func (f *regFixture) unsub(cs *connData, ch string) bool {
	f.t.Helper()
	_, _, ok := f.r.unsubscribe(cs, []byte(ch))
	f.check()
	return ok
}

func (f *regFixture) run() {
	f.t.Helper()
	runAll(f.loops)
	f.check()
}

// check verifies the subscription table's cross-references and the broker protocol.
func (f *regFixture) check() {
	f.t.Helper()
	if err := checkSubTable(f.r); err != nil {
		f.t.Fatal(err)
	}
	if v := f.b.violations(); len(v) > 0 {
		f.t.Fatalf("broker misuse: %v", v)
	}
}

// checkSubTable verifies every index the subscription table maintains.
func checkSubTable(r *subTable) error {
	var channels, members int64
	for i := range r.stripes {
		sh := &r.stripes[i]
		sh.mu.RLock()
		for name, ch := range sh.m {
			channels++
			if ch.name != name || ch.sh != sh {
				sh.mu.RUnlock()
				return fmt.Errorf("channel %q filed under %q", ch.name, name)
			}
			seen := map[int32]bool{}
			for pos, ls := range ch.active {
				if int(ls.pos) != pos || ls.ch != ch {
					sh.mu.RUnlock()
					return fmt.Errorf("%q: loop %d at %d records pos %d", name, ls.loop, pos, ls.pos)
				}
				if seen[ls.loop] || len(ls.members) == 0 {
					sh.mu.RUnlock()
					return fmt.Errorf("%q: loop %d duplicated or empty", name, ls.loop)
				}
				seen[ls.loop] = true
				for idx, m := range ls.members {
					members++
					k := slices.IndexFunc(m.cs.subs, func(s connSub) bool { return s.ls == ls })
					if k < 0 || int(m.cs.subs[k].idx) != idx || m.cs.conn != m.conn {
						sh.mu.RUnlock()
						return fmt.Errorf("%q: member %d of loop %d not indexed by its conn", name, idx, ls.loop)
					}
					if n := len(r.dups[ls.loop][dupKey{m.cs, ls}]); (m.flags&mDups != 0) != (n > 0) || (n > 0 && m.wait == 0) {
						sh.mu.RUnlock()
						return fmt.Errorf("%q: member %d of loop %d: flags %b, wait %d, %d repeats", name, idx, ls.loop, m.flags, m.wait, n)
					}
					if int32(m.cs.loop) != ls.loop {
						sh.mu.RUnlock()
						return fmt.Errorf("%q: conn of loop %d in loop %d's members", name, m.cs.loop, ls.loop)
					}
				}
			}
		}
		sh.mu.RUnlock()
	}
	var dups int
	for _, d := range r.dups {
		dups += len(d)
	}
	if dups > 0 {
		// Each entry belongs to a member, which the loop above matched.
		var flagged int
		for i := range r.stripes {
			sh := &r.stripes[i]
			sh.mu.RLock()
			for _, ch := range sh.m {
				for _, ls := range ch.active {
					for _, m := range ls.members {
						if m.flags&mDups != 0 {
							flagged++
						}
					}
				}
			}
			sh.mu.RUnlock()
		}
		if flagged != dups {
			return fmt.Errorf("%d repeat lists, %d members flagged", dups, flagged)
		}
	}
	if got := r.channels.Load(); got != channels {
		return fmt.Errorf("channels gauge %d, table holds %d", got, channels)
	}
	if got := r.members.Load(); got != members {
		return fmt.Errorf("subscriptions gauge %d, table holds %d", got, members)
	}
	return nil
}

func TestRegistrySubscribesBrokerOncePerChannel(t *testing.T) {
	f := newRegFixture(t, 3, false)
	a, b, c := f.conn(0), f.conn(0), f.conn(2)
	for _, cs := range []*connData{a, b, c} {
		if res := f.sub(cs, "room", 1); res != subPending && res != subOK {
			t.Fatalf("subscribe: %v", res)
		}
	}
	f.run()
	if calls := f.b.takeCalls(); !slices.Equal(calls, []string{"sub room"}) {
		t.Fatalf("broker calls %v, want one Subscribe", calls)
	}
	// The first subscriber triggered the Subscribe: it learns the outcome
	// through the loop; the later ones joined a confirmed channel.
	if got := len(f.ev.confirmedIDs); got != 1 {
		t.Fatalf("%d confirmations, want 1 (the first subscriber)", got)
	}
	if f.sub(a, "room", 2) != subAlready {
		t.Fatal("second subscribe of the same conn should report subAlready")
	}
	if !f.unsub(a, "room") || !f.unsub(c, "room") {
		t.Fatal("unsubscribe of held channel failed")
	}
	if f.unsub(a, "room") {
		t.Fatal("unsubscribe of a channel no longer held succeeded")
	}
	if calls := f.b.takeCalls(); len(calls) != 0 {
		t.Fatalf("broker calls %v while b still subscribed", calls)
	}
	f.unsub(b, "room")
	if calls := f.b.takeCalls(); !slices.Equal(calls, []string{"unsub room"}) {
		t.Fatalf("broker calls %v, want one Unsubscribe", calls)
	}
	if n := f.r.channels.Load(); n != 0 {
		t.Fatalf("%d channels left", n)
	}
}

func TestRegistrySwapRemoveKeepsIndexes(t *testing.T) {
	f := newRegFixture(t, 2, false)
	var conns []*connData
	for i := 0; i < 12; i++ {
		cs := f.conn(i % 2)
		conns = append(conns, cs)
		for _, ch := range []string{"a", "b", "c"} {
			f.sub(cs, ch, 0)
		}
	}
	f.run()
	// Remove in an order that moves members around in every list.
	for _, i := range []int{5, 0, 11, 6, 3} {
		f.unsub(conns[i], "b")
		f.r.closeConn(conns[i])
		f.check()
		if len(conns[i].subs) != 0 {
			t.Fatalf("closed conn still holds %d subs", len(conns[i].subs))
		}
	}
	if got := f.r.members.Load(); got != 7*3 {
		t.Fatalf("%d subscriptions, want 21", got)
	}
	for _, cs := range conns {
		f.r.closeConn(cs)
	}
	f.check()
	if calls := f.b.takeCalls(); len(calls) != 6 {
		t.Fatalf("broker calls %v, want Subscribe+Unsubscribe for 3 channels", calls)
	}
}

func TestRegistryPendingUntilBrokerConfirms(t *testing.T) {
	f := newRegFixture(t, 2, true)
	a, b, c := f.conn(0), f.conn(0), f.conn(1)
	for i, cs := range []*connData{a, b, c} {
		if res := f.sub(cs, "x", uint64(i+1)); res != subPending {
			t.Fatalf("subscriber %d: %v before confirmation, want pending", i, res)
		}
	}
	f.run()
	if len(f.ev.confirmedIDs)+len(f.ev.failedIDs) != 0 {
		t.Fatal("outcome reported before the broker answered")
	}
	f.b.fire(t, "x", nil)
	f.run()
	slices.Sort(f.ev.confirmedIDs)
	if !slices.Equal(f.ev.confirmedIDs, []uint64{1, 2, 3}) {
		t.Fatalf("confirmed %v, want 1 2 3", f.ev.confirmedIDs)
	}
	if res := f.sub(f.conn(1), "x", 4); res != subOK {
		t.Fatalf("subscriber of a confirmed channel: %v, want ok at once", res)
	}
}

func TestRegistryFailureRemovesWaitersAndUnsubscribes(t *testing.T) {
	f := newRegFixture(t, 2, true)
	a, b := f.conn(0), f.conn(1)
	f.sub(a, "x", 1)
	f.sub(b, "x", 2)
	f.b.fire(t, "x", ErrUnavailable)
	f.run()
	slices.Sort(f.ev.failedIDs)
	if !slices.Equal(f.ev.failedIDs, []uint64{1, 2}) {
		t.Fatalf("failed %v, want 1 2", f.ev.failedIDs)
	}
	if len(a.subs)+len(b.subs) != 0 || f.r.members.Load() != 0 || f.r.channels.Load() != 0 {
		t.Fatal("failed subscribers were not removed")
	}
	if calls := f.b.takeCalls(); !slices.Equal(calls, []string{"sub x", "unsub x"}) {
		t.Fatalf("broker calls %v", calls)
	}
}

func TestRegistryNewcomerAfterFailureResubscribes(t *testing.T) {
	f := newRegFixture(t, 1, true)
	a := f.conn(0)
	f.sub(a, "x", 1)
	f.b.fire(t, "x", errors.New("down")) // the loop has not settled yet
	b := f.conn(0)
	if res := f.sub(b, "x", 2); res != subPending {
		t.Fatalf("newcomer after failure: %v, want pending", res)
	}
	f.run()
	if !slices.Equal(f.ev.failedIDs, []uint64{1}) || len(f.ev.confirmedIDs) != 0 {
		t.Fatalf("failed %v confirmed %v: only the first waiter should fail", f.ev.failedIDs, f.ev.confirmedIDs)
	}
	f.b.fire(t, "x", nil)
	f.run()
	if !slices.Equal(f.ev.confirmedIDs, []uint64{2}) {
		t.Fatalf("confirmed %v, want the newcomer", f.ev.confirmedIDs)
	}
	if calls := f.b.takeCalls(); !slices.Equal(calls, []string{"sub x", "unsub x", "sub x"}) {
		t.Fatalf("broker calls %v", calls)
	}
}

func TestRegistryLeaveBeforeConfirmation(t *testing.T) {
	f := newRegFixture(t, 1, true)
	a := f.conn(0)
	f.sub(a, "x", 1)
	f.unsub(a, "x")
	f.sub(a, "x", 2) // a fresh Subscribe: the first is being undone
	f.b.fire(t, "x", nil)
	f.run()
	if len(f.ev.confirmedIDs) != 0 {
		t.Fatalf("a stale confirmation answered %v", f.ev.confirmedIDs)
	}
	f.b.fire(t, "x", nil)
	f.run()
	if !slices.Equal(f.ev.confirmedIDs, []uint64{2}) {
		t.Fatalf("confirmed %v, want 2", f.ev.confirmedIDs)
	}
	if calls := f.b.takeCalls(); !slices.Equal(calls, []string{"sub x", "unsub x", "sub x"}) {
		t.Fatalf("broker calls %v", calls)
	}
	f.r.closeConn(a)
	f.check()
	if calls := f.b.takeCalls(); !slices.Equal(calls, []string{"unsub x"}) {
		t.Fatalf("close: broker calls %v", calls)
	}
}
