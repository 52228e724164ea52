package redis

import (
	"context"

	"github.com/redis/rueidis"

	"github.com/wshub/wshub/hub"
)

// wantLocked is the plan's view of the broker's table for this shard.
func (s *shard) wantLocked(ch string) (mine, wanted bool) {
	st := s.b.chans[ch]
	mine = st != nil && st.shard == s
	return mine, mine && st.wanted
}

// settleLocked takes the waiters of ch, which Redis now holds (or no longer
// needs to), and forgets a channel nobody wants any more.
func (s *shard) settleLocked(ch string, fire []func(error)) []func(error) {
	b := s.b
	st := b.chans[ch]
	if st == nil || st.shard != s {
		return fire
	}
	fire = append(fire, st.waiters...)
	st.waiters = nil
	if !st.wanted {
		delete(b.chans, ch)
	}
	return fire
}

// sync sends the commands the plan asks for, all batches pipelined in one
// round trip, and hands the answers back to it. It returns how many channels
// Redis confirmed. An error means the connection is unusable (a refusal by
// Redis, like MOVED, is not one).
func (s *shard) sync(dc rueidis.DedicatedClient) (int, error) {
	b := s.b
	var fire []func(error)
	b.mu.Lock()
	groups, settled := s.plan.next(s.wantLocked)
	for _, ch := range settled {
		fire = s.settleLocked(ch, fire)
	}
	b.mu.Unlock()
	for _, f := range fire {
		f(nil)
	}
	if len(groups) == 0 {
		return 0, nil
	}

	cmds := make(rueidis.Commands, len(groups))
	for i, g := range groups {
		cmds[i] = s.command(dc, g.chans, g.unsub)
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

// subscribedLocked records Redis' confirmation and collects the waiters it
// satisfies; the plan marks what is no longer wanted for the next round.
func (s *shard) subscribedLocked(chs []string, fire []func(error)) []func(error) {
	s.b.stats.subscribed.Add(int64(s.plan.subscribed(chs, s.wantLocked)))
	for _, ch := range chs {
		fire = s.settleLocked(ch, fire)
	}
	s.wakeIfDirtyLocked()
	return fire
}

func (s *shard) unsubscribedLocked(chs []string) {
	s.b.stats.subscribed.Add(-int64(s.plan.unsubscribed(chs, s.wantLocked)))
	s.wakeIfDirtyLocked()
}

// wakeIfDirtyLocked has the shard goroutine run again for what the plan
// marked while applying answers.
func (s *shard) wakeIfDirtyLocked() {
	if !s.plan.pending() {
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
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
