package loadtest

import (
	"math"
	"sync/atomic"
	"time"
)

// presenceTol is how far from the linger a churn's time away may be
// before the ledger expects one outcome: the gateway's held leaves go out
// on a 100 ms tick, and every push takes its time to arrive.
const presenceTol = 250 * time.Millisecond

// presenceShared is what a presence-churn run's pollers share.
type presenceShared struct {
	expConns, expUsers []int64 // per channel, at rest
	// busy is per user the monotonic ns before which it may not churn:
	// never while one of its members is away, nor within the linger plus
	// presenceTol of its return, so that a push for a user is its latest
	// churn's (presenceLedger).
	busy       []atomic.Int64
	querying   atomic.Bool
	settleFrom atomic.Int64 // monotonic ns; 0 while not settling
	settled    atomic.Int64 // monotonic ns every channel answered as expected since settleFrom; 0 until then
	pushes     atomic.Int64 // joins and leaves watchers received: the runner waits until they stop
}

func newPresenceShared(cfg *Config) *presenceShared {
	s := &presenceShared{busy: make([]atomic.Int64, cfg.Users)}
	s.expConns, s.expUsers = cfg.presenceExpected()
	return s
}

// presEvent is one timed fact for the ledger.
type presEvent struct {
	t        int64 // monotonic ns
	w        int32 // watcher (its connection index) for pushes
	ch, user int32
	kind     uint8
}

// Kinds of presEvent.
const (
	evLeft uint8 = iota
	evBack
	evJoin
	evLeave
)

// pollerPresence is one poller's presence-churn state: its members and
// their drops, what its watchers received, and the querier when it lives
// here.
type pollerPresence struct {
	dropper
	events       []presEvent
	memberPushes int64 // joins and leaves members received (not accounted)
	q            *querier
}

func newPollerPresence(p *poller) *pollerPresence {
	ps := p.e.pres
	pp := &pollerPresence{dropper: newDropper(p.e.cfg)}
	pp.eligible = func(s *awaySub) bool { return ps.busy[s.user].Load() <= p.e.now() }
	pp.dropped = func(s *awaySub) {
		s.leftAt = p.e.now()
		ps.busy[s.user].Store(math.MaxInt64)
		pp.events = append(pp.events, presEvent{t: s.leftAt, ch: s.ch, user: s.user, kind: evLeft})
	}
	return pp
}

// presenceBack accounts for a member's subscribe ok: back from a churn
// when wsload had dropped it.
func (p *poller) presenceBack(s *awaySub) {
	if s.leftAt == 0 {
		return // its first subscribe, or back from a drop the gateway made
	}
	now := p.e.now()
	s.leftAt = 0
	p.e.pres.busy[s.user].Store(now + int64(p.e.cfg.Linger+presenceTol))
	p.pres.events = append(p.pres.events, presEvent{t: now, ch: s.ch, user: s.user, kind: evBack})
}

// presencePush accounts for a join or leave: a watcher's for the ledger,
// a member's only counted.
func (p *poller) presencePush(c *conn, r *reply) {
	if !c.has(fWatch) {
		p.pres.memberPushes++
		return
	}
	ch := p.e.channelOf(r.channel)
	if ch != c.ch {
		p.ctr.errs[errForeign].Add(1)
		return
	}
	kind := evJoin
	if r.op == replyLeave {
		kind = evLeave
	}
	p.e.pres.pushes.Add(1)
	p.pres.events = append(p.pres.events, presEvent{t: p.e.now(), w: c.idx, ch: ch, user: userIndex(r.user), kind: kind})
}

// userIndex is k of a minted sub "wsload-k", -1 for any other user.
func userIndex(sub []byte) int32 {
	const prefix = "wsload-"
	if len(sub) <= len(prefix) || string(sub[:len(prefix)]) != prefix {
		return -1
	}
	n := parseInt(sub[len(prefix):], -1)
	if n < 0 || n > math.MaxInt32 {
		return -1
	}
	return int32(n)
}
