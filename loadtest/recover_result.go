package loadtest

// recoverAgg sums one channel's recover subscribers (offsetTrack) on one
// poller or process. With the channel's final offset F (where publishing
// started, Base, plus the publications accepted) their subscribers were
// due Subs×F − FirstSum offsets in all, and those away at the end (not
// subscribed again) could not get the Away×F − AwayLastSum published after
// their last one.
type recoverAgg struct {
	Subs         int64 `json:"subs"`
	Base         int64 `json:"base"` // highest first ok offset: the channel's offset when publishing started
	FirstSum     int64 `json:"first_sum"`
	Received     int64 `json:"received"`
	Dups         int64 `json:"dups"`
	Reordered    int64 `json:"reordered"`
	Unrecovered  int64 `json:"unrecovered"`
	Recoveries   int64 `json:"recoveries"`
	NotRecovered int64 `json:"not_recovered"`
	EpochChanges int64 `json:"epoch_changes"`
	Away         int64 `json:"away"`
	AwayLastSum  int64 `json:"away_last_sum"`
	Holes        int64 `json:"holes"`      // offsets skipped over and never received
	Unfinished   int64 `json:"unfinished"` // subscribers whose last recovery's replay did not reach its ok's offset
}

// addTrack adds one subscriber; away says it was not subscribed at the end.
func (a *recoverAgg) addTrack(t *offsetTrack, away bool) {
	if !t.started() {
		return // never subscribed: counted as failed in setup
	}
	a.Subs++
	a.FirstSum += t.first
	a.Received += t.received
	a.Dups += t.dups
	a.Reordered += t.reordered
	a.Unrecovered += t.unrecovered
	a.Recoveries += int64(t.recoveries)
	a.NotRecovered += int64(t.notRecov)
	a.EpochChanges += int64(t.epochs)
	a.Holes += t.holes
	if t.catchUp > 0 {
		a.Unfinished++
	}
	if away {
		a.Away++
		a.AwayLastSum += t.since()
	}
}

func (a *recoverAgg) add(o recoverAgg) {
	a.Subs += o.Subs
	a.Base = max(a.Base, o.Base)
	a.FirstSum += o.FirstSum
	a.Received += o.Received
	a.Dups += o.Dups
	a.Reordered += o.Reordered
	a.Unrecovered += o.Unrecovered
	a.Recoveries += o.Recoveries
	a.NotRecovered += o.NotRecovered
	a.EpochChanges += o.EpochChanges
	a.Away += o.Away
	a.AwayLastSum += o.AwayLastSum
	a.Holes += o.Holes
	a.Unfinished += o.Unfinished
}

// RecoverRaw is one process's recover figures, summed across processes.
type RecoverRaw struct {
	Chans       []recoverAgg `json:"chans"`
	Disconnects int64        `json:"disconnects"`
	Replayed    int64        `json:"replayed"`
	OK          Sparse       `json:"ok"`
	CaughtUp    Sparse       `json:"caught_up"`
	Rounds      []roundRaw   `json:"rounds,omitempty"` // recover --missed
}

func (r *RecoverRaw) merge(o *RecoverRaw) {
	if len(r.Chans) < len(o.Chans) {
		r.Chans = append(r.Chans, make([]recoverAgg, len(o.Chans)-len(r.Chans))...)
	}
	for i := range o.Chans {
		r.Chans[i].add(o.Chans[i])
	}
	r.Disconnects += o.Disconnects
	r.Replayed += o.Replayed
	r.OK = mergeSparse(r.OK, o.OK)
	r.CaughtUp = mergeSparse(r.CaughtUp, o.CaughtUp)
	if len(r.Rounds) < len(o.Rounds) {
		r.Rounds = append(r.Rounds, make([]roundRaw, len(o.Rounds)-len(r.Rounds))...)
	}
	for i := range o.Rounds {
		r.Rounds[i].add(o.Rounds[i])
	}
}

// addRecover folds one poller's recover subscribers into r (on that
// poller's goroutine, under collect's lock).
func (r *Raw) addRecover(rc *pollerRecover, channels int) {
	if r.Recover == nil {
		r.Recover = &RecoverRaw{Chans: make([]recoverAgg, channels)}
	}
	var o RecoverRaw
	o.Chans = make([]recoverAgg, channels)
	for _, rs := range rc.subs {
		away := rs.c == nil || !rs.c.has(fReady)
		o.Chans[rs.ch].addTrack(&rs.trk, away)
	}
	for ch, b := range rc.base {
		o.Chans[ch].Base = b
	}
	o.Disconnects, o.Replayed = rc.drops, rc.replayed
	o.OK, o.CaughtUp = rc.okLat.Sparse(), rc.caughtUp.Sparse()
	r.Recover.merge(&o)
}

// RecoverResult is the recover scenario's own figures; its losses,
// duplicates and reordering are the Result's main fields.
type RecoverResult struct {
	Subs         int64 `json:"subs"`
	Disconnects  int64 `json:"disconnects"`   // subscribers wsload dropped during publishing
	Recoveries   int64 `json:"recoveries"`    // reconnect oks with "recovered":true
	NotRecovered int64 `json:"not_recovered"` // reconnect oks with "recovered":false (or none, or another epoch)
	Unrecovered  int64 `json:"unrecovered"`   // offsets those oks skipped: due, neither delivered nor lost
	EpochChanges int64 `json:"epoch_changes"` // reconnect oks with another epoch (their gap is not counted)
	Replayed     int64 `json:"replayed"`      // messages the recovering oks announced
	AwayAtEnd    int64 `json:"away_at_end"`   // subscribers not subscribed again by the end
	AwayTail     int64 `json:"away_tail"`     // offsets published after their last one: due, not counted lost
	// Of the lost offsets, those skipped over (a later one arrived), the
	// rest being after a subscriber's last message; and the subscribers
	// whose last recovery's replay never reached its ok's offset.
	LostInGaps int64 `json:"lost_in_gaps"`
	Unfinished int64 `json:"unfinished_replays"`
	// Reconnects that recovered, from the subscribe sent to its ok, and to
	// the last replayed message (the ok itself when nothing was missed).
	OK       Summary `json:"ok_us"`
	CaughtUp Summary `json:"caught_up_us"`
	// recover --missed: each measured round, and the median of each figure
	// over them.
	Rounds      []RoundResult `json:"rounds,omitempty"`
	RoundMedian *RoundMedian  `json:"round_median,omitempty"`
}

// finalizeRecover fills res's delivery figures from the recover
// accounting: every subscriber was due each offset after its first ok up
// to its channel's last, and what was neither received, nor skipped by
// recovered:false, nor published after the last message of a subscriber
// away at the end, is lost.
func finalizeRecover(res *Result, r *Raw) {
	rr := r.Recover
	if rr == nil {
		rr = &RecoverRaw{}
	}
	s := &RecoverResult{Disconnects: rr.Disconnects, Replayed: rr.Replayed,
		OK: rr.OK.Histogram().Summarize(), CaughtUp: rr.CaughtUp.Histogram().Summarize()}
	res.Expected, res.Delivered, res.Duplicates, res.Reordered = 0, 0, 0, 0
	for ch, a := range rr.Chans {
		var pub int64
		if ch < len(r.PubChans) {
			pub = r.PubChans[ch]
		}
		final := a.Base + pub
		res.Expected += a.Subs*final - a.FirstSum
		res.Delivered += a.Received
		res.Duplicates += a.Dups
		res.Reordered += a.Reordered
		s.Subs += a.Subs
		s.Recoveries += a.Recoveries
		s.NotRecovered += a.NotRecovered
		s.Unrecovered += a.Unrecovered
		s.EpochChanges += a.EpochChanges
		s.AwayAtEnd += a.Away
		s.LostInGaps += a.Holes
		s.Unfinished += a.Unfinished
		s.AwayTail += a.Away*final - a.AwayLastSum
	}
	res.Lost = max(0, res.Expected-res.Delivered-s.Unrecovered-s.AwayTail)
	res.LossRatio = 0
	if res.Expected > 0 {
		res.LossRatio = float64(res.Lost) / float64(res.Expected)
	}
	s.Rounds = finalizeRounds(rr.Rounds)
	s.medianRounds()
	res.Recover = s
}
