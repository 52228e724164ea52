package redis

import (
	"iter"
	"slices"
	"strings"
)

// move is one of the slot plan's answers: carry channel ch to the shard of
// master to, or, when to is "", to no shard until a slot refresh routes it.
type move struct {
	ch string
	to string
}

// place is where the broker keeps a channel, as the slot plan sees it.
type place struct {
	home    string // master of the channel's shard; "" while it has none
	wanted  bool   // somebody wants it subscribed
	waiting bool   // subscribers wait for Redis' answer
}

// needed: a channel nobody wants or waits for is never kept waiting for a route.
func (pl place) needed() bool { return pl.wanted || pl.waiting }

// placeFunc tells the slot plan where the broker keeps ch; ok is false when
// the broker has no such channel. Like wantFunc, it keeps the plan free of a
// copy of the broker's table.
type placeFunc func(ch string) (pl place, ok bool)

// slotPlan is a cluster's routing: the master of every slot, and the
// channels that wait for one. It decides which channels go to which master's
// shard when a channel is taken up, when a new slot map arrives, when Redis
// refuses an SSUBSCRIBE (MOVED: go where it says) and when Redis drops a
// subscription on its own (a slot moved away). It does no I/O and has no
// lock: the broker calls it with Broker.mu held and carries the moves out
// (opening and halting shards, marking channels on both shards), so every
// slot-move decision is tested without Redis (slotplan_test.go).
type slotPlan struct {
	instance string // names the probe channels; set once

	// Owned by the plan (mutated only by its methods, under Broker.mu).
	slots    *slotMap            // as last read from CLUSTER SLOTS, plus MOVED answers since
	unrouted map[string]struct{} // needed channels whose slot has no known master
}

func newSlotPlan(instance string) *slotPlan {
	return &slotPlan{instance: instance, slots: new(slotMap), unrouted: make(map[string]struct{})}
}

// route is the master of ch's slot; "" when unknown.
func (p *slotPlan) route(ch string) string { return p.slots[slotOf(ch)] }

// track keeps unrouted in step with a channel's new home.
func (p *slotPlan) track(ch, to string, needed bool) {
	if to == "" && needed {
		p.unrouted[ch] = struct{}{}
	} else {
		delete(p.unrouted, ch)
	}
}

// adopt routes a channel the broker has just taken up (it is wanted).
// refresh asks for a slot refresh: the channel's slot has no known master.
func (p *slotPlan) adopt(ch string) (to string, refresh bool) {
	to = p.route(ch)
	p.track(ch, to, true)
	return to, to == ""
}

// forget drops a channel the broker deleted.
func (p *slotPlan) forget(ch string) { delete(p.unrouted, ch) }

// waiting lists, in order, the channels that wait for a route.
func (p *slotPlan) waiting() []string {
	chs := make([]string, 0, len(p.unrouted))
	for ch := range p.unrouted {
		chs = append(chs, ch)
	}
	slices.Sort(chs)
	return chs
}

// install takes a new slot map. masters lists, in order, every master it
// names: each needs a shard, any other shard goes. When the map changed, or
// some channel waits for a route, every channel of chans is routed again:
// moves (in channel order) are those whose master changed. refresh reports
// that channels still wait for a route after all.
func (p *slotPlan) install(m *slotMap, chans iter.Seq[string], where placeFunc) (masters []string, moves []move, refresh bool) {
	changed := *p.slots != *m
	p.slots = m
	seen := make(map[string]struct{})
	for _, a := range m {
		if _, dup := seen[a]; !dup && a != "" {
			seen[a] = struct{}{}
			masters = append(masters, a)
		}
	}
	slices.Sort(masters)
	if changed || len(p.unrouted) > 0 {
		// Rebuilt from the table, so that an entry the broker failed to
		// forget cannot keep the router busy.
		clear(p.unrouted)
		for ch := range chans {
			pl, ok := where(ch)
			if !ok {
				continue
			}
			to := p.route(ch)
			p.track(ch, to, pl.needed())
			if to != pl.home {
				moves = append(moves, move{ch: ch, to: to})
			}
		}
		slices.SortFunc(moves, func(a, b move) int { return strings.Compare(a.ch, b.ch) })
	}
	return masters, moves, len(p.unrouted) > 0
}

// refused decides where the channels of an SSUBSCRIBE that master from
// refused go: to movedTo when Redis answered MOVED (the plan learns their
// slot from it until the next full map), else to no shard until the slot
// refresh the caller must ask for either way. Channels that are no longer
// from's are left alone.
func (p *slotPlan) refused(from string, chs []string, movedTo string, where placeFunc) (moves []move) {
	for _, ch := range chs {
		if movedTo != "" {
			p.slots[slotOf(ch)] = movedTo
		}
		pl, ok := where(ch)
		if !ok || pl.home != from {
			continue
		}
		p.track(ch, movedTo, pl.needed())
		moves = append(moves, move{ch: ch, to: movedTo})
	}
	return moves
}

// dropped decides what happens to ch after master from told us it
// unsubscribed us without being asked: its slot moved away, so the plan's map
// is stale, and a wanted channel waits for the slot refresh the caller must
// ask for (ok) rather than go back to from.
func (p *slotPlan) dropped(from, ch string, where placeFunc) (mv move, ok bool) {
	pl, ok := where(ch)
	if !ok || pl.home != from || !pl.wanted {
		return move{}, false
	}
	p.track(ch, "", true)
	return move{ch: ch}, true
}

// probeFor is the probe channel master addr should use: cur while cur's slot
// is still addr's, else one in the first slot addr owns ("" when it owns
// none).
func (p *slotPlan) probeFor(addr, cur string) string {
	if addr == "" {
		return ""
	}
	if cur != "" && p.route(cur) == addr {
		return cur
	}
	for i, a := range p.slots {
		if a == addr {
			return probeChannel(p.instance, tagForSlot(uint16(i)))
		}
	}
	return ""
}
