package redis

import (
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strconv"
	"testing"

	"github.com/redis/rueidis"

	"github.com/wshub/wshub/hub"
)

// offlineBroker is a Broker wired the way New wires it, but without Redis:
// its shards (one per addr) run no goroutine, so a test drives them by hand,
// with the plans deciding and the runner code carrying the decisions out.
func offlineBroker(cluster bool, addrs ...string) *Broker {
	b := &Broker{
		base: base{
			log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
			cluster: cluster,
			chans:   make(map[string]*chanState),
		},
		shards: make(map[string]*shard),
		probes: make(map[string]*shard),
	}
	b.owner = b
	b.cfg.SubscribeBatch = 10
	if cluster {
		b.slots = newSlotPlan("t")
		b.router = &router{wake: make(chan struct{}, 1), stop: make(chan struct{})}
	}
	for _, a := range addrs {
		b.shards[a] = &shard{b: &b.base, addr: a, wake: make(chan struct{}, 1), stop: make(chan struct{}), plan: newSubPlan(10, cluster), sess: &session{}}
	}
	return b
}

// waiterLog records the answers of Subscribe callbacks, in order.
type waiterLog []error

func (w *waiterLog) waiter(err error) { *w = append(*w, err) }

func fire(fs []func(error), err error) {
	for _, f := range fs {
		f(err)
	}
}

// groupWith returns the group of gs that carries ch.
func groupWith(t *testing.T, gs []cmdGroup, ch string) cmdGroup {
	t.Helper()
	for _, g := range gs {
		for _, c := range g.chans {
			if c == ch {
				return g
			}
		}
	}
	t.Fatalf("no group carries %s: %v", ch, gs)
	return cmdGroup{}
}

// The runner's side, without Redis: waiters are answered exactly once
// whatever order a session's end and its late answers come in, and a refused
// standalone SUBSCRIBE fails its waiters.
func TestShardWaitersOnce(t *testing.T) {
	t.Run("session ends with SUBSCRIBE in flight", func(t *testing.T) {
		var calls waiterLog
		b := offlineBroker(false, "")
		s := b.shards[""]
		b.chans["a"] = &chanState{shard: s, wanted: true, waiters: []func(error){calls.waiter}}
		s.markDirtyLocked("a")
		if gs, _ := s.plan.next(s.wantLocked); len(gs) != 1 {
			t.Fatalf("groups = %v", gs)
		}
		// The connection breaks before the answer: sync applies nothing,
		// endSession fails the waiter.
		s.endSession()
		if !reflect.DeepEqual(calls, waiterLog{hub.ErrUnavailable}) {
			t.Fatalf("waiter calls = %v, want one ErrUnavailable", calls)
		}
		if b.chans["a"] == nil || !b.chans["a"].wanted {
			t.Fatal("wanted channel forgotten at session end")
		}

		// The next session resubscribes it; a new subscriber is answered
		// once, the failed one not again.
		s.sess = &session{}
		s.plan.mark("a") // as runSession marks every wanted channel
		b.chans["a"].waiters = append(b.chans["a"].waiters, calls.waiter)
		gs, _ := s.plan.next(s.wantLocked)
		if !reflect.DeepEqual(gs, groups(sub("a"))) {
			t.Fatalf("next session groups = %v", gs)
		}
		fire(s.subscribedLocked(gs[0].chans, nil), nil)
		if !reflect.DeepEqual(calls, waiterLog{hub.ErrUnavailable, nil}) {
			t.Fatalf("waiter calls = %v", calls)
		}
		if !s.plan.has("a") {
			t.Fatal("a not subscribed on the next session")
		}
	})

	t.Run("refused SUBSCRIBE", func(t *testing.T) {
		var calls waiterLog
		b := offlineBroker(false, "")
		s := b.shards[""]
		b.chans["a"] = &chanState{shard: s, wanted: true, waiters: []func(error){calls.waiter}}
		b.chans["b"] = &chanState{shard: s, wanted: false, waiters: []func(error){calls.waiter}}
		markAll(s.plan, "a", "b")
		gs, settled := s.plan.next(s.wantLocked)
		if !reflect.DeepEqual(settled, []string{"b"}) {
			t.Fatalf("settled = %v, want [b]", settled)
		}
		var settledFire []func(error)
		for _, ch := range settled {
			settledFire = s.settleLocked(ch, settledFire)
		}
		failed := s.refusedLocked(gs[0], &rueidis.RedisError{}, nil)
		fire(settledFire, nil)
		fire(failed, hub.ErrUnavailable)
		if !reflect.DeepEqual(calls, waiterLog{nil, hub.ErrUnavailable}) {
			t.Fatalf("waiter calls = %v", calls)
		}
		if b.chans["b"] != nil {
			t.Fatal("unwanted settled channel kept")
		}
		if s.plan.has("a") {
			t.Fatal("refused channel counted as subscribed")
		}
	})
}

// A slot move carried out by the runner, without Redis: MOVED sends the
// channel to the other master's shard with its waiter, a subscription Redis
// drops waits for the next slot map, and a failed slot read fails the
// waiters of channels without a route.
func TestShardSlotMoves(t *testing.T) {
	const addrA, addrB = "a:1", "b:1"
	half := func(low, high string) *slotMap {
		m := new(slotMap)
		for i := range m {
			if i < numSlots/2 {
				m[i] = low
			} else {
				m[i] = high
			}
		}
		return m
	}
	b := offlineBroker(true, addrA, addrB)
	sa, sb := b.shards[addrA], b.shards[addrB]
	ch := "c:0"
	for i := 1; slotOf(ch) >= numSlots/2; i++ {
		ch = "c:" + strconv.Itoa(i) // a channel in the low half
	}
	b.installLocked(half(addrA, addrB))
	if len(b.shards) != 2 || sa.probeChan == "" || sb.probeChan == "" {
		t.Fatalf("after the first map: %d shards, probes %q %q", len(b.shards), sa.probeChan, sb.probeChan)
	}

	var calls waiterLog
	st := &chanState{wanted: true, waiters: []func(error){calls.waiter}}
	b.chans[ch] = st
	b.adoptLocked(ch, st)
	if st.shard != sa {
		t.Fatalf("%s adopted by %v, want %s", ch, st.shard, addrA)
	}
	gs, _ := sa.plan.next(sa.wantLocked)
	g := groupWith(t, gs, ch)

	// MOVED to B: the channel and its waiter go there, the slot is learned.
	fire(b.refusedLocked(sa, g.chans, addrB, nil), hub.ErrUnavailable)
	if len(calls) != 0 {
		t.Fatalf("waiter answered on MOVED: %v", calls)
	}
	if st.shard != sb || b.slots.route(ch) != addrB {
		t.Fatalf("after MOVED: on %v, routed to %q", st.shard.addr, b.slots.route(ch))
	}
	if len(b.router.wake) != 1 {
		t.Fatal("MOVED did not ask for a slot refresh")
	}
	<-b.router.wake
	gs, _ = sb.plan.next(sb.wantLocked)
	g = groupWith(t, gs, ch)
	if g.unsub {
		t.Fatalf("B's plan for %s: %v", ch, gs)
	}
	fire(sb.subscribedLocked(g.chans, nil), nil)
	if !reflect.DeepEqual(calls, waiterLog{nil}) || !sb.plan.has(ch) {
		t.Fatalf("after B confirmed: calls %v, has %v", calls, sb.plan.has(ch))
	}
	if gs, _ := sa.plan.next(sa.wantLocked); len(gs) != 0 {
		t.Fatalf("A sends %v for a channel it never had", gs)
	}

	// Redis drops it on B (the slot moved on): no shard until a new map.
	if _, dropped := sb.plan.notice(ch); !dropped {
		t.Fatal("notice not seen as a drop")
	}
	b.droppedLocked(sb, ch)
	if st.shard != nil || !reflect.DeepEqual(b.slots.waiting(), []string{ch}) || len(b.router.wake) != 1 {
		t.Fatalf("after the drop: shard %v, waiting %v", st.shard, b.slots.waiting())
	}
	<-b.router.wake

	// The slot map cannot be read: the new subscriber learns it at once;
	// the channel stays wanted and waits for a route.
	st.waiters = append(st.waiters, calls.waiter)
	if !b.applySlots(nil, errors.New("no node")) {
		t.Fatal("a failed read does not ask to retry")
	}
	if !reflect.DeepEqual(calls, waiterLog{nil, hub.ErrUnavailable}) || b.chans[ch] != st {
		t.Fatalf("after the failed read: calls %v", calls)
	}

	// The new map gives the low half to B: the channel lands there, and
	// each probe channel is in a slot of its own master again.
	if b.applySlots(half(addrB, addrA), nil) {
		t.Fatal("retry asked although every channel has a route")
	}
	if st.shard != sb || len(b.slots.waiting()) != 0 {
		t.Fatalf("after the new map: on %v, waiting %v", st.shard, b.slots.waiting())
	}
	for _, s := range []*shard{sa, sb} {
		if b.slots.route(s.probeChan) != s.addr || b.probes[s.probeChan] != s {
			t.Fatalf("probe %q of %s not in a slot it owns", s.probeChan, s.addr)
		}
	}
}
