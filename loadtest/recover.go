package loadtest

// pollerRecover is one poller's recover state: its subscribers and their
// drops, and what their reconnects measured.
type pollerRecover struct {
	dropper
	epochs   []string    // per channel, the latest epoch an ok gave (shared by its subscribers' tracks)
	base     []int64     // per channel, the highest first ok offset: where publishing started
	okLat    *Histogram  // a recovering reconnect's subscribe to its ok
	caughtUp *Histogram  // ... to the last replayed message (or the ok, when there was nothing to replay)
	replayed int64       // messages the recovering oks said they replay
	burst    pollerBurst // recover --missed: the current round
}

func newPollerRecover(cfg *Config) *pollerRecover {
	rc := &pollerRecover{
		dropper: newDropper(cfg),
		epochs:  make([]string, cfg.Channels), base: make([]int64, cfg.Channels),
		okLat: NewHistogram(), caughtUp: NewHistogram(),
	}
	// A subscriber still receiving its replay is not dropped. Sparing
	// replays gives every recovery its caught-up time (a slow machine
	// stretches replays, and a drop in one left it unmeasured).
	rc.eligible = func(s *awaySub) bool { return s.trk.catchUp == 0 }
	if cfg.Missed > 0 {
		rc.hold = &rc.burst.held // back all at once, at the burst
	}
	return rc
}

// epochOf interns an ok's epoch per channel: every subscriber of a
// channel shares one string instead of a copy each.
func (rc *pollerRecover) epochOf(ch int32, b []byte) string {
	if rc.epochs[ch] != string(b) {
		rc.epochs[ch] = string(b)
	}
	return rc.epochs[ch]
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
	if r.offset == 1 && len(r.epoch) > 0 && rs.trk.epoch == "" {
		// A stream's first publication carries its epoch: what an ok on the
		// empty stream could not give, for the next subscribe's since.
		rs.trk.epoch = p.rec.epochOf(c.ch, r.epoch)
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
