package loadtest

import "time"

// presenceLedger accounts for the joins and leaves watchers receive
// against the churns that should have caused them: pure state fed with
// timed events in time order, no clock, no goroutine.
//
// A churn is one member of a channel leaving (wsload dropped it) and its
// subscribe confirmed again; its user identifies it among pushes, which
// carry the user (the conn they carry may be an earlier connection's, see
// PROTOCOL.md). The runner never churns a user twice within the linger, so
// a push for (channel, user) belongs to that user's latest churn on the
// channel that had begun by then; a push no churn explains is stray.
//
// With linger L every watcher of the channel should see, for a churn away
// for A: nothing when A < L (the leave held and cancelled by the join: the
// churn is suppressed, and any push for it leaked), one leave then one join
// when A > L or L = 0 (announced). Within tol of L either outcome is right
// (the gateway's timer ticks and delivery take time): borderline.
type presenceLedger struct {
	linger, tol int64           // ns
	watchers    []int32         // per channel, how many watchers are on it
	churns      []*churnRec     // in order of leaving
	latest      map[int64]int32 // channel<<32 | user -> index in churns of its latest churn
	stray       int64
}

// churnRec is one churn and what each watcher of its channel saw of it.
type churnRec struct {
	ch         int32
	left, back int64 // ns; back 0 while it is away
	seen       map[int32]*seenPushes
}

// seenPushes is what one watcher received for one churn.
type seenPushes struct {
	leaves, joins   int32
	firstJoin, last int64 // ns of the first join, of the last leave
}

func newPresenceLedger(linger, tol time.Duration, watchersPerChannel []int32) *presenceLedger {
	return &presenceLedger{linger: int64(linger), tol: int64(tol), watchers: watchersPerChannel, latest: map[int64]int32{}}
}

func ledgerKey(ch, user int32) int64 { return int64(ch)<<32 | int64(uint32(user)) }

// left records that user's member of channel ch was dropped at t.
func (l *presenceLedger) left(t int64, ch, user int32) {
	l.latest[ledgerKey(ch, user)] = int32(len(l.churns))
	l.churns = append(l.churns, &churnRec{ch: ch, left: t, seen: map[int32]*seenPushes{}})
}

// back records that the member away of (ch, user) was subscribed again at t.
func (l *presenceLedger) back(t int64, ch, user int32) {
	if i, ok := l.latest[ledgerKey(ch, user)]; ok && l.churns[i].back == 0 {
		l.churns[i].back = t
	}
}

// push records a join (leave false) or leave for (ch, user) that watcher
// w received at t.
func (l *presenceLedger) push(t int64, w, ch, user int32, leave bool) {
	i, ok := l.latest[ledgerKey(ch, user)]
	if !ok || l.churns[i].left > t {
		l.stray++
		return
	}
	c := l.churns[i]
	s := c.seen[w]
	if s == nil {
		s = &seenPushes{}
		c.seen[w] = s
	}
	if leave {
		s.leaves++
		s.last = t
	} else {
		if s.joins == 0 {
			s.firstJoin = t
		}
		s.joins++
	}
}

// PresenceTally is what the ledger found, churn by churn (per churn, not
// per watcher: a churn is announced only if every watcher of its channel
// saw exactly a leave then a join, suppressed only if none saw anything).
type PresenceTally struct {
	Churns     int64 `json:"churns"`     // members dropped and subscribed again
	Unfinished int64 `json:"unfinished"` // dropped and not back by the end: not judged
	// Churns away shorter than the linger: with no push at all, and with
	// some (LeakedPushes in all).
	Suppressed   int64 `json:"suppressed"`
	Leaked       int64 `json:"leaked"`
	LeakedPushes int64 `json:"leaked_pushes"`
	// Churns away longer than the linger (or every churn without one):
	// announced with exactly one leave then one join at every watcher, and
	// not (a push missing, extra or out of order somewhere).
	Announced int64 `json:"announced"`
	Wrong     int64 `json:"wrong"`
	// Churns away within tol of the linger: either outcome is right, and
	// those that had neither count in Wrong.
	Borderline int64 `json:"borderline"`
	Pushes     int64 `json:"pushes"` // joins and leaves attributed to churns, over every watcher
	Stray      int64 `json:"stray"`  // pushes for a user no churn explains
	// PushesPerChurn is Pushes over churns × their channel's watchers: 2
	// when every churn is announced, 0 when every one is suppressed.
	PushesPerChurn float64 `json:"pushes_per_churn"`
}

// tally judges every churn.
func (l *presenceLedger) tally() PresenceTally {
	var t PresenceTally
	t.Stray = l.stray
	var pairs int64
	for _, c := range l.churns {
		var pushes int64
		for _, s := range c.seen {
			pushes += int64(s.leaves + s.joins)
		}
		t.Pushes += pushes
		if c.back == 0 {
			t.Unfinished++
			continue
		}
		t.Churns++
		nw := l.watchers[c.ch]
		pairs += int64(nw)
		silent := pushes == 0
		announced := int32(len(c.seen)) == nw
		for _, s := range c.seen {
			announced = announced && s.leaves == 1 && s.joins == 1 && s.last <= s.firstJoin
		}
		away := c.back - c.left
		switch {
		case l.linger > 0 && away < l.linger-l.tol:
			if silent {
				t.Suppressed++
			} else {
				t.Leaked++
				t.LeakedPushes += pushes
			}
		case l.linger == 0 || away > l.linger+l.tol:
			if announced {
				t.Announced++
			} else {
				t.Wrong++
			}
		default:
			t.Borderline++
			if !silent && !announced {
				t.Wrong++
			}
		}
	}
	if pairs > 0 {
		t.PushesPerChurn = round3(float64(t.Pushes) / float64(pairs))
	}
	return t
}
