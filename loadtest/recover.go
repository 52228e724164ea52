package loadtest

import (
	"container/heap"
	"time"
)

// recoverSub is one recover subscriber: it outlives its connections, which
// come and go, and lives on one poller (reconnects dial from the poller
// that lost the connection).
type recoverSub struct {
	trk    offsetTrack
	ch     int32 // its channel
	c      *conn // the current connection, nil while away
	sentAt int64 // monotonic ns the current subscribe was sent, for a pending replay
	away   bool  // wsload dropped it: it reconnects after a random time away
	// inRound: dropped in the current round of recover --missed and not
	// settled since (caught up, or answered not recovered).
	inRound bool
}

// pollerRecover is one poller's recover state: its subscribers, when it
// drops the next one, and what their reconnects measured.
type pollerRecover struct {
	subs     []*recoverSub
	perSec   float64 // this poller's share of Config.DisconnectRate
	nextDrop int64   // monotonic ns of the next drop; 0 while not dropping
	awayMin  int64
	awaySpan int64      // AwayMax - AwayMin, ns
	epochs   []string   // per channel, the latest epoch an ok gave (shared by its subscribers' tracks)
	base     []int64    // per channel, the highest first ok offset: where publishing started
	okLat    *Histogram // a recovering reconnect's subscribe to its ok
	caughtUp *Histogram // ... to the last replayed message (or the ok, when there was nothing to replay)
	drops    int64
	replayed int64       // messages the recovering oks said they replay
	burst    pollerBurst // recover --missed: the current round
}

func newPollerRecover(cfg *Config) *pollerRecover {
	return &pollerRecover{
		awayMin: int64(cfg.AwayMin), awaySpan: int64(cfg.AwayMax - cfg.AwayMin),
		epochs: make([]string, cfg.Channels), base: make([]int64, cfg.Channels),
		okLat: NewHistogram(), caughtUp: NewHistogram(),
	}
}

// addSubs takes over subscribers dialled on this poller and sets its
// share of the disconnect rate by how many it holds.
func (rc *pollerRecover) addSubs(cfg *Config, subs []*recoverSub) {
	rc.subs = append(rc.subs, subs...)
	rc.perSec = cfg.DisconnectRate * float64(len(rc.subs)) / float64(cfg.Conns)
}

// epochOf interns an ok's epoch per channel: every subscriber of a
// channel shares one string instead of a copy each.
func (rc *pollerRecover) epochOf(ch int32, b []byte) string {
	if rc.epochs[ch] != string(b) {
		rc.epochs[ch] = string(b)
	}
	return rc.epochs[ch]
}

// recoverTick drops subscribers at random while the engine says so, as a
// Poisson process at this poller's rate.
func (p *poller) recoverTick(now int64) {
	rc := p.rec
	if !p.e.dropping.Load() || rc.perSec <= 0 {
		rc.nextDrop = 0
		return
	}
	gap := func() int64 { return int64(p.rng.ExpFloat64() / rc.perSec * 1e9) }
	if rc.nextDrop == 0 {
		rc.nextDrop = now + gap()
	}
	for rc.nextDrop <= now {
		rc.nextDrop += gap()
		p.dropOne()
	}
}

// dropOne resets a random subscribed connection. A few picks that land on
// subscribers away, still subscribing or still receiving a replay are
// retried, then the drop is skipped: at high rates most subscribers may be
// away at once. Sparing replays gives every recovery its caught-up time
// (a slow machine stretches replays, and a drop in one left it unmeasured).
func (p *poller) dropOne() {
	rc := p.rec
	for try := 0; try < 8 && len(rc.subs) > 0; try++ {
		rs := rc.subs[p.rng.IntN(len(rc.subs))]
		if c := rs.c; c != nil && c.st == stOpen && c.has(fReady) && !c.has(fClosing) && rs.trk.catchUp == 0 {
			rs.away = true
			rc.drops++
			p.release(c, true)
			return
		}
	}
}

// recoverTimeout caps how long epoll may sleep before the next drop is due.
func (p *poller) recoverTimeout(ms int) int {
	if p.rec == nil || p.rec.nextDrop == 0 {
		return ms
	}
	d := (p.rec.nextDrop - p.e.now()) / int64(time.Millisecond)
	return int(max(0, min(int64(ms), d)))
}

// recoverLost schedules a recover subscriber's next connection: after a
// random time away when wsload dropped it, else at once (the gateway
// dropped it, or a dial failed: those take afterClose's backoff).
func (p *poller) recoverLost(c *conn, r dialReq) (scheduled bool) {
	rs := c.rs
	if !rs.away {
		return false
	}
	rs.away = false
	rc := p.rec
	if p.e.cfg.Missed > 0 {
		rc.burst.held = append(rc.burst.held, r) // back all at once, at the burst
		return true
	}
	at := p.e.now() + rc.awayMin
	if rc.awaySpan > 0 {
		at += p.rng.Int64N(rc.awaySpan + 1)
	}
	heap.Push(&p.timers, timer{at: at, req: r})
	return true
}

// subscribeCmd appends c's subscribe: with since and the epoch once its
// subscriber has been subscribed before.
func (p *poller) subscribeCmd(dst []byte, c *conn) []byte {
	if rs := c.rs; rs != nil && rs.trk.started() {
		rs.sentAt = c.t0
		return appendSubscribe(dst, p.e.chanNames[c.ch], rs.trk.since(), rs.trk.epoch, p.rng.Uint32())
	}
	return appendSubscribe(dst, p.e.chanNames[c.ch], -1, "", p.rng.Uint32())
}

// recoverOK accounts for a recover subscriber's subscribe ok (c.t0 is when
// the subscribe was sent).
func (p *poller) recoverOK(c *conn, r *reply) {
	rs, rc := c.rs, p.rec
	if r.offset < 0 {
		p.ctr.errs[errOffset].Add(1) // not a history channel: nothing to recover from
		return
	}
	first := !rs.trk.started()
	recs := rs.trk.recoveries
	caught := rs.trk.subscribed(r.offset, rc.epochOf(c.ch, r.epoch), r.recovered)
	if first {
		rc.base[c.ch] = max(rc.base[c.ch], r.offset)
		return
	}
	if rs.trk.recoveries == recs {
		p.settle(rs, false) // not recovered: no replay to time
		return
	}
	now := p.e.now()
	rc.okLat.Record((now - c.t0) / 1000)
	rc.replayed += max(0, r.replayed)
	p.announced(rs, r.replayed)
	if caught {
		rc.caughtUp.Record((now - c.t0) / 1000)
		p.settle(rs, true)
	}
}

// recoverMessage accounts for a message to a recover subscriber.
func (p *poller) recoverMessage(c *conn, r *reply) {
	rs := c.rs
	if ch := p.e.channelOf(r.channel); ch != c.ch {
		p.ctr.errs[errForeign].Add(1)
		return
	}
	if r.offset < 0 || !c.has(fReady) { // the ok comes first, also before a replay
		p.ctr.errs[errOffset].Add(1)
		return
	}
	live := r.offset > rs.trk.live
	caught, ok := rs.trk.message(r.offset)
	if !ok { // its first ok had no offset
		p.ctr.errs[errOffset].Add(1)
		return
	}
	if caught {
		p.rec.caughtUp.Record((p.e.now() - rs.sentAt) / 1000)
		p.settle(rs, true)
	}
	p.ctr.received.Add(1)
	p.lastRecv = p.wall
	// A replayed message's age is how long its subscriber was away, not
	// the gateway's delivery latency.
	if _, ts, ok := parsePayload(r.data); ok && live {
		us := (p.wall - ts) / 1000
		p.lat.Record(us)
		p.latIv.Record(us)
	}
}
