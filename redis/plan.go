package redis

import "sort"

// cmdGroup is the channels of one (UN)SUBSCRIBE command.
type cmdGroup struct {
	chans []string
	unsub bool
}

// wantFunc tells the plan what the broker wants for a channel: mine when the
// channel belongs on this shard, wanted when it should be subscribed there.
// The plan keeps no copy of the broker's table, so the answer is always
// current when a decision is made.
type wantFunc func(ch string) (mine, wanted bool)

// subPlan is one shard's subscription bookkeeping on its current connection:
// which channels to (UN)SUBSCRIBE next, in which batches, and what Redis has
// confirmed. It does no I/O and has no lock: the shard calls it with
// Broker.mu held and sends the commands itself, so every decision here can be
// tested without Redis (plan_test.go). Waiters stay in the broker's chanState:
// a channel moving between shards takes them along.
type subPlan struct {
	batch  int  // most channels per command (Config.SubscribeBatch); set once
	bySlot bool // cluster: SSUBSCRIBE takes the channels of one slot only; set once

	// Owned by the plan (mutated only by its methods, under Broker.mu).
	dirty     map[string]struct{} // channels whose subscription may need a command
	active    map[string]struct{} // channels Redis confirmed on the current connection
	unsubWait map[string]int      // our UNSUBSCRIBEs with neither notice nor answer back yet
}

func newSubPlan(batch int, bySlot bool) *subPlan {
	return &subPlan{
		batch:     max(batch, 1),
		bySlot:    bySlot,
		dirty:     make(map[string]struct{}),
		active:    make(map[string]struct{}),
		unsubWait: make(map[string]int),
	}
}

// mark notes that ch may need a command; the next call to next decides.
func (p *subPlan) mark(ch string) { p.dirty[ch] = struct{}{} }

// pending reports whether some channel is marked for the next call to next.
func (p *subPlan) pending() bool { return len(p.dirty) > 0 }

// has reports whether ch is subscribed on the connection and stays so: while
// our UNSUBSCRIBE of it is unanswered, Redis may still apply it, so a
// subscriber must wait for the SUBSCRIBE that follows.
func (p *subPlan) has(ch string) bool {
	_, ok := p.active[ch]
	return ok && p.unsubWait[ch] == 0
}

// confirmed reports whether Redis confirmed ch on the connection (and has
// not taken it away since), an UNSUBSCRIBE of it in flight or not.
func (p *subPlan) confirmed(ch string) bool {
	_, ok := p.active[ch]
	return ok
}

// next turns the marked channels into commands: SUBSCRIBE groups first, then
// UNSUBSCRIBE, each at most batch channels (and one slot when bySlot), in
// channel order so a plan is reproducible. A channel whose UNSUBSCRIBE is
// still unanswered stays marked for after the answer. settled lists this
// shard's marked channels that need no command (already subscribed, or
// dropped before they reached Redis): their waiters can be answered now.
func (p *subPlan) next(want wantFunc) (groups []cmdGroup, settled []string) {
	var subs, unsubs, later []string
	for ch := range p.dirty {
		if p.unsubWait[ch] > 0 {
			// Redis may still drop it: decide once the UNSUBSCRIBE is
			// answered, never settle a subscriber against it now.
			later = append(later, ch)
			continue
		}
		mine, wanted := want(ch)
		_, have := p.active[ch]
		switch {
		case wanted && !have:
			subs = append(subs, ch)
		case !wanted && have:
			unsubs = append(unsubs, ch)
			p.unsubWait[ch]++
		case mine:
			settled = append(settled, ch)
		}
	}
	clear(p.dirty)
	for _, ch := range later {
		p.mark(ch)
	}
	sort.Strings(subs)
	sort.Strings(unsubs)
	sort.Strings(settled)
	groups = p.split(groups, subs, false)
	groups = p.split(groups, unsubs, true)
	return groups, settled
}

func (p *subPlan) split(groups []cmdGroup, chs []string, unsub bool) []cmdGroup {
	parts := [][]string{chs}
	if p.bySlot {
		parts = groupBySlot(chs)
	}
	for _, chs := range parts {
		for len(chs) > 0 {
			n := min(len(chs), p.batch)
			groups = append(groups, cmdGroup{chans: chs[:n:n], unsub: unsub})
			chs = chs[n:]
		}
	}
	return groups
}

// subscribed records Redis' confirmation of a SUBSCRIBE group and returns how
// many channels became active. A channel no longer wanted here (dropped or
// moved while the command was in flight) is marked for an UNSUBSCRIBE.
func (p *subPlan) subscribed(chs []string, want wantFunc) (added int) {
	for _, ch := range chs {
		if _, dup := p.active[ch]; !dup {
			p.active[ch] = struct{}{}
			added++
		}
		if mine, wanted := want(ch); !mine || !wanted {
			p.mark(ch)
		}
	}
	return added
}

// unsubscribed records the answer to an UNSUBSCRIBE group (also a refused
// one: Redis did not keep the channel for us either way) and returns how many
// channels stopped being active. A channel wanted again meanwhile is marked
// for the SUBSCRIBE its new subscriber waits for.
func (p *subPlan) unsubscribed(chs []string, want wantFunc) (removed int) {
	for _, ch := range chs {
		delete(p.unsubWait, ch)
		if _, ok := p.active[ch]; ok {
			delete(p.active, ch)
			removed++
		}
		if mine, wanted := want(ch); mine && wanted {
			p.mark(ch)
		}
	}
	return removed
}

// notice handles an unsubscribe push notice for ch: Redis no longer sends us
// its messages, so it stops counting as subscribed now. rueidis calls the hook
// before it hands the UNSUBSCRIBE's answer to sync, and a subscriber arriving
// in between must not be told the channel is there. removed reports that ch
// was active; dropped that Redis took it away without our UNSUBSCRIBE (a
// cluster slot moved), and the caller decides where it goes next.
func (p *subPlan) notice(ch string) (removed, dropped bool) {
	_, removed = p.active[ch]
	delete(p.active, ch)
	if n := p.unsubWait[ch]; n > 0 {
		if n == 1 {
			delete(p.unsubWait, ch)
		} else {
			p.unsubWait[ch] = n - 1
		}
		return removed, false
	}
	return removed, removed
}

// sessionEnded forgets the connection: nothing is active or in flight any
// more, so the next session marks and subscribes every wanted channel again.
// It returns how many channels were active.
func (p *subPlan) sessionEnded() (dropped int) {
	dropped = len(p.active)
	clear(p.active)
	clear(p.unsubWait)
	clear(p.dirty)
	return dropped
}
