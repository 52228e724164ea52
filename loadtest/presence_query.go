package loadtest

import (
	"strconv"
	"time"
)

// Querier bounds: the gateway answers a connection's fourth query out
// with 429, so at most maxQueries wait; one unanswered for queryTimeout is
// given up. Every presenceEvery-th query asks for the members.
const (
	maxQueries    = 4
	queryTimeout  = 5 * time.Second
	presenceEvery = 10
	settleRate    = 50 // queries/s while settling, at least
)

// querier is the presence-churn connection that asks presence_stats and
// presence round robin over the channels, and checks the counts.
type querier struct {
	c       *conn
	next    int64 // monotonic ns of the next query
	n       int64 // queries sent
	pending map[int64]pendingQuery

	stats, members *Histogram // query to answer, µs
	res            PresenceQueries
	matched        []bool // per channel, while settling: its latest answer was as expected
}

// pendingQuery is a query waiting for its answer.
type pendingQuery struct {
	sent    int64
	ch      int32
	members bool
}

func newQuerier(channels int) *querier {
	return &querier{pending: map[int64]pendingQuery{}, stats: NewHistogram(), members: NewHistogram(),
		matched: make([]bool, channels),
		res:     PresenceQueries{LastConns: make([]int64, channels), LastUsers: make([]int64, channels), MinConns: make([]int64, channels)}}
}

// queryTick sends the queries due while the run is querying.
func (p *poller) queryTick(now int64) {
	q, ps := p.pres.q, p.e.pres
	for id, pq := range q.pending {
		if now-pq.sent > int64(queryTimeout) {
			delete(q.pending, id)
			q.res.Unanswered++
		}
	}
	c := q.c
	if !ps.querying.Load() || c == nil || c.st != stOpen || !c.has(fReady) {
		q.next = 0
		return
	}
	settling := ps.settleFrom.Load() != 0
	rate := p.e.cfg.QueryRate
	if settling {
		rate = max(rate, settleRate)
	}
	if q.next == 0 {
		q.next = now
	}
	for q.next <= now && len(q.pending) < maxQueries {
		q.next += int64(float64(time.Second) / rate)
		q.n++
		pq := pendingQuery{sent: now, ch: int32(q.n % int64(len(q.matched))), members: !settling && q.n%presenceEvery == 0}
		id := q.n + 1 // id 1 is the subscribes'
		q.pending[id] = pq
		p.wbuf = appendQuery(p.wbuf[:0], p.e.chanNames[pq.ch], pq.members, id, p.rng.Uint32())
		p.write(c, p.wbuf)
		q.res.Sent++
	}
	if q.next < now {
		q.next = now // the gateway is slower than the rate: do not burst after
	}
}

// queryTimeout caps how long epoll may sleep before the next query.
func (p *poller) queryTimeout(ms int) int {
	if p.pres == nil || p.pres.q == nil || p.pres.q.next == 0 {
		return ms
	}
	d := (p.pres.q.next - p.e.now()) / int64(time.Millisecond)
	return int(max(0, min(int64(ms), d)))
}

// answered accounts for an ok to one of the querier's queries.
func (p *poller) answered(r *reply) {
	q := p.pres.q
	pq, ok := q.pending[r.id]
	if !ok {
		return
	}
	delete(q.pending, r.id)
	now := p.e.now()
	us := (now - pq.sent) / 1000
	if pq.members {
		q.members.Record(us)
		q.res.Answers++
		q.res.MembersMax = max(q.res.MembersMax, r.members)
		if r.truncated {
			q.res.Truncated++
		}
		return
	}
	q.stats.Record(us)
	q.res.Answers++
	p.checkCounts(pq, r.conns, r.users, now)
}

// checkCounts compares a presence_stats answer with the channel at rest:
// never above it; while settling, the channel settles once it matches.
func (p *poller) checkCounts(pq pendingQuery, conns, users, now int64) {
	q, ps, ch := p.pres.q, p.e.pres, pq.ch
	if conns > ps.expConns[ch] || users > ps.expUsers[ch] || conns < 0 || users < 0 {
		q.res.Implausible++
	}
	q.res.LastConns[ch], q.res.LastUsers[ch] = conns, users
	if q.res.MinConns[ch] == 0 || conns < q.res.MinConns[ch] {
		q.res.MinConns[ch] = conns
	}
	from := ps.settleFrom.Load()
	if from == 0 || pq.sent < from {
		return
	}
	q.matched[ch] = conns == ps.expConns[ch] && users == ps.expUsers[ch]
	for _, m := range q.matched {
		if !m {
			return
		}
	}
	ps.settled.CompareAndSwap(0, now)
}

// queryFailed accounts for an error answer to a query.
func (p *poller) queryFailed(r *reply) {
	q := p.pres.q
	if _, ok := q.pending[r.id]; !ok {
		return
	}
	delete(q.pending, r.id)
	if q.res.Errors == nil {
		q.res.Errors = map[string]int64{}
	}
	q.res.Errors[strconv.FormatInt(r.code, 10)]++
}

// startSettling (on the querier's poller) forgets what earlier answers
// matched: a settle counts answers to queries sent after it began.
func (q *querier) startSettling() {
	for i := range q.matched {
		q.matched[i] = false
	}
}

// appendQuery appends a masked presence (members) or presence_stats query.
func appendQuery(dst, channel []byte, members bool, id int64, key uint32) []byte {
	op := "presence_stats"
	if members {
		op = "presence"
	}
	var num [20]byte
	idb := strconv.AppendInt(num[:0], id, 10)
	n := len(`{"op":"","channel":"","id":}`) + len(op) + len(channel) + len(idb)
	dst, start := beginClientFrame(dst, opText, n, key)
	dst = append(dst, `{"op":"`...)
	dst = append(dst, op...)
	dst = append(dst, `","channel":"`...)
	dst = append(dst, channel...)
	dst = append(dst, `","id":`...)
	dst = append(dst, idb...)
	dst = append(dst, '}')
	maskBytes(dst[start:], key)
	return dst
}
