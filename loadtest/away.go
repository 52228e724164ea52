package loadtest

import (
	"container/heap"
	"time"
)

// awaySub is a subscriber that outlives its connections (recover,
// presence-churn): wsload drops its connection at random, it stays away a
// random time and reconnects, to the next target, from the poller that
// lost it. Each scenario uses its own fields.
type awaySub struct {
	c    *conn // the current connection, nil while away
	ch   int32 // its channel
	away bool  // wsload dropped it: it reconnects after a random time away

	// recover
	trk    offsetTrack
	sentAt int64 // monotonic ns the current subscribe was sent, for a pending replay
	// inRound: dropped in the current round of recover --missed and not
	// settled since (caught up, or answered not recovered).
	inRound bool

	// presence-churn
	user   int32 // its user's index: the sub of the token it presents
	leftAt int64 // monotonic ns wsload dropped it, 0 once it is back
}

// dropper is one poller's share of a scenario's drops: its away
// subscribers, dropped as a Poisson process at its share of the rate, each
// away for a uniformly random time.
type dropper struct {
	subs     []*awaySub
	perSec   float64
	next     int64 // monotonic ns of the next drop; 0 while not dropping
	awayMin  int64
	awaySpan int64 // AwayMax - AwayMin, ns
	drops    int64
	skipped  int64 // drops that found no subscriber to drop

	// eligible, when set, says whether a subscribed one may be dropped now;
	// dropped, when set, hears of each drop.
	eligible func(*awaySub) bool
	dropped  func(*awaySub)
	// hold, when set, takes the reconnects of the subscribers wsload
	// dropped instead of a timer (recover --missed: all back at once, at
	// the burst).
	hold *[]dialReq
}

func newDropper(cfg *Config) dropper {
	return dropper{awayMin: int64(cfg.AwayMin), awaySpan: int64(cfg.AwayMax - cfg.AwayMin)}
}

// addSubs takes over subscribers dialled on this poller and sets its share
// of rate (per second, over total subscribers) by how many it holds.
func (d *dropper) addSubs(subs []*awaySub, rate float64, total int) {
	d.subs = append(d.subs, subs...)
	d.perSec = rate * float64(len(d.subs)) / float64(total)
}

// dropTick drops subscribers while the engine says so.
func (p *poller) dropTick(now int64) {
	d := p.drop
	if !p.e.dropping.Load() || d.perSec <= 0 {
		d.next = 0
		return
	}
	gap := func() int64 { return int64(p.rng.ExpFloat64() / d.perSec * 1e9) }
	if d.next == 0 {
		d.next = now + gap()
	}
	for d.next <= now {
		d.next += gap()
		p.dropOne()
	}
}

// dropOne resets a random subscribed connection. A few picks that land on
// subscribers away, still subscribing or not eligible (recover: still
// receiving a replay; presence-churn: its user churned too recently) are
// retried, then the drop is skipped: at high rates most subscribers may be
// away at once.
func (p *poller) dropOne() {
	d := p.drop
	for try := 0; try < 8 && len(d.subs) > 0; try++ {
		s := d.subs[p.rng.IntN(len(d.subs))]
		if s.subscribed() && (d.eligible == nil || d.eligible(s)) {
			p.dropSub(s)
			return
		}
	}
	d.skipped++
}

// subscribed reports whether s has a connection that is subscribed and
// not closing: one wsload may drop.
func (s *awaySub) subscribed() bool {
	c := s.c
	return c != nil && c.st == stOpen && c.has(fReady) && !c.has(fClosing)
}

// dropSub resets s's subscribed connection; it comes back by comeBack.
func (p *poller) dropSub(s *awaySub) {
	d := p.drop
	s.away = true
	d.drops++
	if d.dropped != nil {
		d.dropped(s)
	}
	p.release(s.c, true)
}

// dropTimeout caps how long epoll may sleep before the next drop is due.
func (p *poller) dropTimeout(ms int) int {
	if p.drop == nil || p.drop.next == 0 {
		return ms
	}
	d := (p.drop.next - p.e.now()) / int64(time.Millisecond)
	return int(max(0, min(int64(ms), d)))
}

// comeBack schedules an away subscriber's next connection: after a random
// time away when wsload dropped it (or held for the dropper's hold), else
// at once (the gateway dropped it, or a dial failed: those take
// afterClose's backoff).
func (p *poller) comeBack(c *conn, r dialReq) (scheduled bool) {
	s := c.rs
	if !s.away {
		return false
	}
	s.away = false
	d := p.drop
	if d.hold != nil {
		*d.hold = append(*d.hold, r)
		return true
	}
	at := p.e.now() + d.awayMin
	if d.awaySpan > 0 {
		at += p.rng.Int64N(d.awaySpan + 1)
	}
	heap.Push(&p.timers, timer{at: at, req: r})
	return true
}
