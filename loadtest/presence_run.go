package loadtest

import (
	"context"
	"slices"
	"sync"
	"time"
)

// planPresence plans presence-churn's connections: members 0..Conns-1
// (member i on channel i % Channels as user i % Users), watchers after
// them (watcher j on channel j % Channels as user Users + j), then the
// querier (user Users + Watchers, subscribed to nothing). Each carries
// its user's token, also when it reconnects.
func (ru *runner) planPresence(add func(dialReq)) {
	cfg, e := ru.cfg, ru.e
	for i := 0; i < cfg.Conns; i++ {
		ch, u := int32(i%cfg.Channels), int32(i%cfg.Users)
		add(dialReq{idx: int32(i), ch: ch, flags: fSub | fReconnect, target: e.subTarget(int32(i)), user: u + 1,
			rs: &awaySub{trk: newOffsetTrack(), ch: ch, user: u}})
	}
	for j := 0; j < cfg.Watchers; j++ {
		idx := int32(cfg.Conns + j)
		add(dialReq{idx: idx, ch: int32(j % cfg.Channels), flags: fSub | fWatch | fReconnect, target: e.subTarget(idx), user: int32(cfg.Users+j) + 1})
	}
	idx := int32(cfg.Conns + cfg.Watchers)
	add(dialReq{idx: idx, ch: -1, flags: fQuery | fReconnect, target: e.subTarget(idx), user: int32(cfg.Users+cfg.Watchers) + 1})
}

// querierPoller is the index of the poller the querier is dialled on
// (setup's add puts connection idx on poller idx % pollers).
func (ru *runner) querierPoller() int {
	return (ru.cfg.Conns + ru.cfg.Watchers) % len(ru.e.pollers)
}

// presence runs presence-churn's main phase: once the setup's joins have
// reached the watchers and every channel counts what it should, churn
// members for the duration while querying; then let every member come
// back, wait out the linger (held leaves, and leaks, arrive by then) and
// see the counts settle again before the ledger judges every churn.
func (ru *runner) presence(ctx context.Context) error {
	e, cfg, ps := ru.e, ru.cfg, ru.e.pres
	res := &PresenceResult{Members: cfg.Conns, Users: cfg.Users, Watchers: cfg.Watchers, Channels: cfg.Channels,
		LingerMs: float64(cfg.Linger) / 1e6, TolMs: float64(presenceTol) / 1e6, ExpConns: ps.expConns, ExpUsers: ps.expUsers}
	ru.r.Presence = res
	ps.querying.Store(true)
	defer ps.querying.Store(false)
	var err error
	if err = ru.pushesStop(ctx, 0); err != nil {
		return err
	}
	if res.SettleStartMs, err = ru.settle(ctx); err != nil {
		return err
	}
	from := e.now()
	e.dropping.Store(true)
	err = sleepCtx(ctx, cfg.Duration)
	e.dropping.Store(false)
	ru.r.PublishEnd = time.Now().UnixNano()
	if err != nil {
		return err
	}
	if err := ru.awaitBack(ctx); err != nil {
		return err
	}
	if err := ru.pushesStop(ctx, cfg.Linger+presenceTol); err != nil {
		return err
	}
	if res.SettleEndMs, err = ru.settle(ctx); err != nil {
		return err
	}
	ps.querying.Store(false)
	ru.tallyPresence(res, from)
	return nil
}

// pushesStop waits at least least, then until the watchers have received
// no join or leave for drainQuiet, at most cfg.Drain more.
func (ru *runner) pushesStop(ctx context.Context, least time.Duration) error {
	if err := sleepCtx(ctx, least); err != nil {
		return err
	}
	ps := ru.e.pres
	last, quietSince := ps.pushes.Load(), time.Now()
	for deadline := time.Now().Add(ru.cfg.Drain); time.Now().Before(deadline); {
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
		if n := ps.pushes.Load(); n != last {
			last, quietSince = n, time.Now()
		} else if time.Since(quietSince) >= drainQuiet {
			return nil
		}
	}
	return nil
}

// settle has the querier ask every channel until each answers the counts
// at rest, and says how long that took in ms (-1: not within the bound, a
// subscribe deadline plus the linger).
func (ru *runner) settle(ctx context.Context) (float64, error) {
	ps := ru.e.pres
	ru.e.each(func(p *poller) {
		if p.pres.q != nil {
			p.pres.q.startSettling()
		}
	})
	ps.settled.Store(0)
	from := ru.e.now()
	ps.settleFrom.Store(from)
	defer ps.settleFrom.Store(0)
	deadline := time.Now().Add(ru.cfg.HandshakeTimeout + ru.cfg.Linger)
	for ps.settled.Load() == 0 {
		if time.Now().After(deadline) {
			return -1, nil
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return 0, err
		}
	}
	return round1(float64(ps.settled.Load()-from) / 1e6), nil
}

// tallyPresence gathers every poller's events and query figures into res
// and has the ledger judge the churns since from.
func (ru *runner) tallyPresence(res *PresenceResult, from int64) {
	cfg := ru.cfg
	var mu sync.Mutex
	var events []presEvent
	stats, list := NewHistogram(), NewHistogram()
	ru.e.each(func(p *poller) {
		mu.Lock()
		defer mu.Unlock()
		pp := p.pres
		events = append(events, pp.events...)
		res.Drops += pp.drops
		res.Skipped += pp.skipped
		res.MemberPushes += pp.memberPushes
		if q := pp.q; q != nil {
			stats.Merge(q.stats)
			list.Merge(q.members)
			res.Queries = q.res
			res.Queries.Unanswered += int64(len(q.pending))
		}
	})
	res.Stats, res.List = stats.Summarize(), list.Summarize()
	if cfg.Watchers == 0 {
		return
	}
	watchers := make([]int32, cfg.Channels)
	for j := 0; j < cfg.Watchers; j++ {
		watchers[j%cfg.Channels]++
	}
	l := newPresenceLedger(cfg.Linger, presenceTol, watchers)
	slices.SortStableFunc(events, func(a, b presEvent) int { return int(a.t - b.t) })
	for _, ev := range events {
		if ev.t < from {
			continue // setup's joins
		}
		switch ev.kind {
		case evLeft:
			l.left(ev.t, ev.ch, ev.user)
		case evBack:
			l.back(ev.t, ev.ch, ev.user)
		default:
			l.push(ev.t, ev.w, ev.ch, ev.user, ev.kind == evLeave)
		}
	}
	t := l.tally()
	res.Accounting = &t
}
