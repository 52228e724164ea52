package redis

import (
	"context"

	"github.com/redis/rueidis"

	"github.com/wshub/wshub/hub"
)

// cmdGroup is the channels of one (UN)SUBSCRIBE command.
type cmdGroup struct {
	chans []string
	unsub bool
}

// sync sends the commands that make the connection's subscriptions match the
// wanted channels, all batches pipelined in one round trip, and applies the
// answers. It returns how many channels Redis confirmed. An error means the
// connection is unusable (a refusal by Redis, like MOVED, is not one).
func (s *shard) sync(dc rueidis.DedicatedClient) (int, error) {
	b := s.b
	var subs, unsubs []string
	var fire []func(error)
	b.mu.Lock()
	for ch := range s.dirty {
		st := b.chans[ch]
		mine := st != nil && st.shard == s
		want := mine && st.wanted
		_, have := s.active[ch]
		switch {
		case want && !have:
			subs = append(subs, ch)
		case !want && have:
			unsubs = append(unsubs, ch)
			s.unsubWait[ch]++
		case mine:
			// Already subscribed, or given up before it reached Redis.
			fire = append(fire, st.waiters...)
			st.waiters = nil
			if !st.wanted {
				delete(b.chans, ch)
			}
		}
	}
	clear(s.dirty)
	b.mu.Unlock()
	for _, f := range fire {
		f(nil)
	}
	if len(subs) == 0 && len(unsubs) == 0 {
		return 0, nil
	}

	var cmds rueidis.Commands
	var groups []cmdGroup
	add := func(chs []string, unsub bool) {
		for len(chs) > 0 {
			n := min(len(chs), b.cfg.SubscribeBatch)
			cmds = append(cmds, s.command(dc, chs[:n], unsub))
			groups = append(groups, cmdGroup{chans: chs[:n], unsub: unsub})
			chs = chs[n:]
		}
	}
	if b.cluster {
		// SSUBSCRIBE takes channels of one slot only.
		for _, g := range groupBySlot(subs) {
			add(g, false)
		}
		for _, g := range groupBySlot(unsubs) {
			add(g, true)
		}
	} else {
		add(subs, false)
		add(unsubs, true)
	}
	b.stats.subscribeCmds.Add(uint64(len(groups) - countUnsub(groups)))

	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.CommandTimeout)
	resps := dc.DoMulti(ctx, cmds...)
	cancel()

	confirmed := 0
	var connErr error
	var failed []func(error)
	fire = fire[:0]
	b.mu.Lock()
	for i, g := range groups {
		err := resps[i].Error()
		if err != nil {
			if rerr, ok := rueidis.IsRedisErr(err); ok && connErr == nil {
				failed = s.refusedLocked(g, rerr, failed)
				continue
			}
			if connErr == nil {
				connErr = err
			}
			continue
		}
		if g.unsub {
			s.unsubscribedLocked(g.chans)
			continue
		}
		confirmed += len(g.chans)
		fire = s.subscribedLocked(g.chans, fire)
	}
	b.mu.Unlock()
	for _, f := range fire {
		f(nil)
	}
	for _, f := range failed {
		f(hub.ErrUnavailable)
	}
	return confirmed, connErr
}

func (s *shard) command(dc rueidis.DedicatedClient, chs []string, unsub bool) rueidis.Completed {
	switch {
	case s.b.cluster && unsub:
		return dc.B().Sunsubscribe().Channel(chs...).Build()
	case s.b.cluster:
		return dc.B().Ssubscribe().Channel(chs...).Build()
	case unsub:
		return dc.B().Unsubscribe().Channel(chs...).Build()
	default:
		return dc.B().Subscribe().Channel(chs...).Build()
	}
}

func countUnsub(gs []cmdGroup) (n int) {
	for _, g := range gs {
		if g.unsub {
			n++
		}
	}
	return n
}

// subscribedLocked records Redis' confirmation and collects the waiters it satisfies.
func (s *shard) subscribedLocked(chs []string, fire []func(error)) []func(error) {
	b := s.b
	for _, ch := range chs {
		if _, dup := s.active[ch]; !dup {
			s.active[ch] = struct{}{}
			b.stats.subscribed.Add(1)
		}
		st := b.chans[ch]
		if st == nil || st.shard != s {
			s.markDirtyLocked(ch) // no longer wanted here: unsubscribe next round
			continue
		}
		fire = append(fire, st.waiters...)
		st.waiters = nil
		if !st.wanted {
			delete(b.chans, ch)
			s.markDirtyLocked(ch)
		}
	}
	return fire
}

func (s *shard) unsubscribedLocked(chs []string) {
	b := s.b
	for _, ch := range chs {
		delete(s.unsubWait, ch)
		if _, ok := s.active[ch]; ok {
			delete(s.active, ch)
			b.stats.subscribed.Add(-1)
		}
		if st := b.chans[ch]; st != nil && st.shard == s && st.wanted {
			s.markDirtyLocked(ch) // wanted again meanwhile
		}
	}
}

// refusedLocked handles a command Redis answered with an error. On a cluster
// that is a slot that moved (MOVED: go where Redis says) or is in flux (route
// again after the next slot refresh). Standalone Redis has no reason to refuse
// a SUBSCRIBE: its waiters are failed.
func (s *shard) refusedLocked(g cmdGroup, rerr *rueidis.RedisError, failed []func(error)) []func(error) {
	b := s.b
	b.log.Warn("redis refused (un)subscribe", "addr", s.addr, "channels", len(g.chans), "err", rerr.Error())
	if g.unsub {
		s.unsubscribedLocked(g.chans)
		return failed
	}
	var to *shard
	if b.router != nil {
		if addr, ok := rerr.IsMoved(); ok {
			b.learnSlotLocked(slotOf(g.chans[0]), addr)
			to = b.shardForLocked(g.chans[0])
		}
		b.router.poke()
	}
	for _, ch := range g.chans {
		st := b.chans[ch]
		if st == nil || st.shard != s {
			continue
		}
		if b.router != nil {
			b.moveLocked(ch, st, to)
			continue
		}
		failed = append(failed, st.waiters...)
		st.waiters = nil
		if !st.wanted {
			delete(b.chans, ch)
		}
	}
	return failed
}
