package redis

import (
	"reflect"
	"testing"
)

// table is a broker's wishes for one shard, as the plan sees them.
type table map[string]bool // channel -> wanted; absent: not this shard's

func (t table) want(ch string) (mine, wanted bool) {
	w, ok := t[ch]
	return ok, ok && w
}

func groups(gs ...cmdGroup) []cmdGroup { return gs }
func sub(chs ...string) cmdGroup       { return cmdGroup{chans: chs} }
func unsub(chs ...string) cmdGroup     { return cmdGroup{chans: chs, unsub: true} }

func markAll(p *subPlan, chs ...string) {
	for _, ch := range chs {
		p.mark(ch)
	}
}

func checkNext(t *testing.T, p *subPlan, tb table, wantGroups []cmdGroup, wantSettled []string) {
	t.Helper()
	gs, settled := p.next(tb.want)
	if !reflect.DeepEqual(gs, wantGroups) {
		t.Fatalf("groups = %v, want %v", gs, wantGroups)
	}
	if !reflect.DeepEqual(settled, wantSettled) {
		t.Fatalf("settled = %v, want %v", settled, wantSettled)
	}
}

// confirm applies a successful answer to every group, as sync does.
func confirm(p *subPlan, tb table, gs []cmdGroup) {
	for _, g := range gs {
		if g.unsub {
			p.unsubscribed(g.chans, tb.want)
		} else {
			p.subscribed(g.chans, tb.want)
		}
	}
}

func TestPlanBatching(t *testing.T) {
	// Three channels in each of two slots ({a} and {b} hash tags).
	chs := []string{"{a}1", "{a}2", "{a}3", "{b}1", "{b}2", "{b}3"}
	tb := table{}
	for _, ch := range chs {
		tb[ch] = true
	}
	for _, tc := range []struct {
		name   string
		batch  int
		bySlot bool
		want   []cmdGroup
	}{
		{"one command", 10, false, groups(sub(chs...))},
		{"batches of 4", 4, false, groups(sub(chs[:4]...), sub(chs[4:]...))},
		{"batches of 1", 1, false, groups(sub("{a}1"), sub("{a}2"), sub("{a}3"), sub("{b}1"), sub("{b}2"), sub("{b}3"))},
		{"one slot per command", 10, true, groups(sub(chs[:3]...), sub(chs[3:]...))},
		{"slots then batches", 2, true, groups(sub("{a}1", "{a}2"), sub("{a}3"), sub("{b}1", "{b}2"), sub("{b}3"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newSubPlan(tc.batch, tc.bySlot)
			markAll(p, chs...)
			checkNext(t, p, tb, tc.want, nil)
			if p.pending() {
				t.Fatal("channels still marked after next")
			}
		})
	}
}

func TestPlanSubscribeUnsubscribe(t *testing.T) {
	p := newSubPlan(10, false)
	tb := table{"a": true, "b": true}
	markAll(p, "a", "b")
	gs, _ := p.next(tb.want)
	if p.has("a") {
		t.Fatal("a reported subscribed before Redis confirmed it")
	}
	confirm(p, tb, gs)
	if !p.has("a") || !p.has("b") || p.pending() {
		t.Fatalf("after confirmation: has a=%v b=%v pending=%v", p.has("a"), p.has("b"), p.pending())
	}

	// A second subscriber of a subscribed channel is settled without a command.
	p.mark("a")
	checkNext(t, p, tb, nil, []string{"a"})

	// Dropped: UNSUBSCRIBE, and the channel stops counting as subscribed at once.
	tb["b"] = false
	p.mark("b")
	checkNext(t, p, tb, groups(unsub("b")), nil)
	if p.has("b") {
		t.Fatal("b reported subscribed while its UNSUBSCRIBE is in flight")
	}
	if n := p.unsubscribed([]string{"b"}, tb.want); n != 1 {
		t.Fatalf("unsubscribed removed %d, want 1", n)
	}
	// Our own UNSUBSCRIBE's notice is not Redis dropping the channel.
	if removed, dropped := p.notice("b"); removed || dropped {
		t.Fatalf("late notice of our own UNSUBSCRIBE: removed %v, dropped %v", removed, dropped)
	}

	// Subscribed and dropped before next ran: nothing to send, waiters settle.
	tb["c"] = false
	p.mark("c")
	checkNext(t, p, tb, nil, []string{"c"})

	// Another shard's channel is neither sent nor settled here.
	p.mark("elsewhere")
	checkNext(t, p, tb, nil, nil)
}

// A subscriber arriving while its channel's UNSUBSCRIBE is in flight waits for
// the SUBSCRIBE after it: Redis may apply the UNSUBSCRIBE yet.
func TestPlanSubscribeDuringUnsubscribe(t *testing.T) {
	p := newSubPlan(10, false)
	tb := table{"a": true}
	p.mark("a")
	gs, _ := p.next(tb.want)
	confirm(p, tb, gs)

	tb["a"] = false
	p.mark("a")
	checkNext(t, p, tb, groups(unsub("a")), nil)

	// Subscribed again while the UNSUBSCRIBE is unanswered.
	tb["a"] = true
	if p.has("a") {
		t.Fatal("a confirmed at once while its UNSUBSCRIBE is in flight")
	}
	p.mark("a")
	// Even if the runner planned again now, a is neither settled nor sent.
	checkNext(t, p, tb, nil, nil)
	if !p.pending() {
		t.Fatal("a forgotten while its UNSUBSCRIBE is in flight")
	}

	// The notice, then the answer (rueidis runs the hook first): a is
	// gone from Redis as of the notice, though sync has no answer yet.
	if removed, dropped := p.notice("a"); !removed || dropped {
		t.Fatalf("notice of our own UNSUBSCRIBE: removed %v, dropped %v", removed, dropped)
	}
	if p.has("a") {
		t.Fatal("a confirmed between its UNSUBSCRIBE's notice and answer")
	}
	if n := p.unsubscribed([]string{"a"}, tb.want); n != 0 {
		t.Fatalf("unsubscribed removed %d after the notice did, want 0", n)
	}
	checkNext(t, p, tb, groups(sub("a")), nil)
	confirm(p, tb, groups(sub("a")))
	if !p.has("a") {
		t.Fatal("a not subscribed after the re-SUBSCRIBE")
	}
}

// Dropped while its SUBSCRIBE is in flight: the confirmation is followed by an
// UNSUBSCRIBE; moved to another shard meanwhile, likewise.
func TestPlanUnsubscribeDuringSubscribe(t *testing.T) {
	p := newSubPlan(10, false)
	tb := table{"a": true, "m": true}
	markAll(p, "a", "m")
	p.next(tb.want)
	tb["a"] = false
	delete(tb, "m") // moved away
	markAll(p, "a", "m")
	if n := p.subscribed([]string{"a", "m"}, tb.want); n != 2 {
		t.Fatalf("subscribed added %d, want 2", n)
	}
	checkNext(t, p, tb, groups(unsub("a", "m")), nil)
}

func TestPlanSessionEnded(t *testing.T) {
	p := newSubPlan(2, false)
	tb := table{"a": true, "b": true, "c": true, "gone": false}
	markAll(p, "a", "b", "c", "gone")
	gs, _ := p.next(tb.want)
	confirm(p, tb, gs[:1]) // a, b confirmed; c in flight
	tb["a"] = false
	p.mark("a")
	checkNext(t, p, tb, groups(unsub("a")), nil) // a's UNSUBSCRIBE in flight
	p.mark("b")                                  // something marked, never planned

	if n := p.sessionEnded(); n != 2 {
		t.Fatalf("sessionEnded dropped %d active, want 2", n)
	}
	if p.has("b") || p.pending() || len(p.unsubWait) != 0 {
		t.Fatal("state of the old connection survived sessionEnded")
	}
	// The next session marks every wanted channel and subscribes them all.
	markAll(p, "b", "c")
	checkNext(t, p, tb, groups(sub("b", "c")), nil)
}

// Redis dropping a channel on its own (a slot moved) is told apart from the
// notice of our own UNSUBSCRIBE.
func TestPlanNotice(t *testing.T) {
	p := newSubPlan(10, false)
	tb := table{"a": true}
	p.mark("a")
	gs, _ := p.next(tb.want)
	confirm(p, tb, gs)
	if removed, dropped := p.notice("a"); !removed || !dropped {
		t.Fatalf("Redis dropping an active channel: removed %v, dropped %v", removed, dropped)
	}
	if p.has("a") {
		t.Fatal("dropped channel still counts as subscribed")
	}
	for _, ch := range []string{"a", "never"} {
		if removed, dropped := p.notice(ch); removed || dropped {
			t.Fatalf("notice for inactive %s: removed %v, dropped %v", ch, removed, dropped)
		}
	}
}

// A refused UNSUBSCRIBE leaves the channel unsubscribed for us; a refused
// SUBSCRIBE leaves nothing active.
func TestPlanRefused(t *testing.T) {
	p := newSubPlan(10, false)
	tb := table{"a": true, "b": true}
	markAll(p, "a", "b")
	gs, _ := p.next(tb.want)
	if !reflect.DeepEqual(gs, groups(sub("a", "b"))) {
		t.Fatalf("groups = %v", gs)
	}
	// Say a and b went in separate commands and b's was refused: only a's
	// answer is recorded.
	p.subscribed([]string{"a"}, tb.want)
	if p.has("b") || !p.has("a") {
		t.Fatal("refused SUBSCRIBE recorded as confirmed")
	}
	tb["a"] = false
	p.mark("a")
	gs, _ = p.next(tb.want)
	p.unsubscribed(gs[0].chans, tb.want) // refused: treated as answered
	if p.has("a") || len(p.unsubWait) != 0 {
		t.Fatal("refused UNSUBSCRIBE left a subscribed or awaited")
	}
}
