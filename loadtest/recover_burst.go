package loadtest

import "time"

// roundRaw is one round of recover --missed in one process: how its
// subscribers, all dropped at once and reconnected at once, settled. A
// subscriber settles with its first reconnect ok that needs no replay, or
// the last message of its replay, or an ok that did not recover.
type roundRaw struct {
	Subs         int64  `json:"subs"`          // dropped at the start of the round
	Missed       int64  `json:"missed"`        // publications accepted while they were away (owned channels)
	Caught       int64  `json:"caught"`        // settled recovered, the whole replay received
	NotRecovered int64  `json:"not_recovered"` // settled by an ok that did not recover
	Replayed     int64  `json:"replayed"`      // messages the recovering oks announced
	Start        int64  `json:"start"`         // unix ns: the reconnect burst began
	Last         int64  `json:"last"`          // unix ns: the last subscriber settled
	CatchUp      Sparse `json:"catch_up"`      // per caught subscriber: burst start to its last replayed message
}

func (r *roundRaw) add(o roundRaw) {
	r.Subs += o.Subs
	r.Missed += o.Missed
	r.Caught += o.Caught
	r.NotRecovered += o.NotRecovered
	r.Replayed += o.Replayed
	r.Start = minNonZero(r.Start, o.Start)
	r.Last = max(r.Last, o.Last)
	r.CatchUp = mergeSparse(r.CatchUp, o.CatchUp)
}

// pollerBurst is one poller's part of the current round.
type pollerBurst struct {
	held    []dialReq // reconnects of dropped subscribers, dialled at the burst
	round   roundRaw  // this poller's figures of the current round
	catchUp *Histogram
}

// dropAll resets every subscribed recover connection of the poller at
// once; their reconnects wait in held for reconnectAll. It returns how
// many it dropped.
func (p *poller) dropAll() int64 {
	rc := p.rec
	b := &rc.burst
	b.round, b.catchUp = roundRaw{}, NewHistogram()
	for _, rs := range rc.subs {
		if rs.subscribed() {
			rs.inRound = true
			b.round.Subs++
			p.dropSub(rs)
		}
	}
	return b.round.Subs
}

// reconnectAll dials every held reconnect now (within the poller's
// handshakes-in-flight cap).
func (p *poller) reconnectAll() {
	b := &p.rec.burst
	p.dialq = append(p.dialq, b.held...)
	b.held = nil
	p.dialQueued()
}

// settle counts a subscriber of the current round as done: caught up
// (recovered, whole replay received) or not recovered. Only its first
// settling in the round counts: one dropped again by the gateway
// reconnects and may settle again.
func (p *poller) settle(rs *awaySub, caught bool) {
	if !rs.inRound {
		return
	}
	rs.inRound = false
	b := &p.rec.burst
	now := p.e.now()
	if caught {
		b.round.Caught++
		b.catchUp.Record((now - p.e.burstAt.Load()) / 1000)
	} else {
		b.round.NotRecovered++
	}
	b.round.Last = p.e.start.Add(time.Duration(now)).UnixNano()
	if p.e.burstLeft.Add(-1) == 0 {
		close(p.e.burstDone)
	}
}

// announced adds a round subscriber's recovering ok's replay length.
func (p *poller) announced(rs *awaySub, replayed int64) {
	if rs.inRound {
		p.rec.burst.round.Replayed += max(0, replayed)
	}
}

// takeRound hands the poller's figures of the round over, and forgets
// subscribers that never settled.
func (p *poller) takeRound() roundRaw {
	rc := p.rec
	for _, rs := range rc.subs {
		rs.inRound = false
	}
	r := rc.burst.round
	r.CatchUp = rc.burst.catchUp.Sparse()
	rc.burst.round = roundRaw{}
	return r
}
