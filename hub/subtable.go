package hub

import (
	"sync"
	"sync/atomic"

	"github.com/wshub/wshub/hub/access"
	"github.com/wshub/wshub/hub/history"

	"golang.org/x/sys/cpu"
)

// The subscription table (subTable): channel -> loops holding subscribers -> members.
//
// Ownership keeps locking off the hot paths:
//   - a loopSubs (one channel's members on one loop) is read and written only
//     on that loop's goroutine, so fan-out and (un)subscribe touch it freely;
//   - the stripe map and each channel's list of active loops and broker state
//     are shared, guarded by the stripe's RWMutex; a loop takes the write lock
//     only when it gains its first or loses its last member of a channel.
//
// The table starts no goroutines: it calls the broker and posts to loops,
// and is driven by tests with fakes for both.

// numStripes spreads channels over independent locks.
const numStripes = 64

type stripe struct {
	mu sync.RWMutex
	m  map[string]*channel
	// publications counts Deliver calls for channels of this stripe; kept here
	// so concurrent publishers on different channels do not share a line.
	publications atomic.Uint64
	_            cpu.CacheLinePad
}

// brokerState is where a channel's broker subscription stands.
type brokerState uint8

const (
	bIdle      brokerState = iota // not subscribed at the broker
	bPending                      // Subscribe called, done not yet
	bConfirmed                    // done(nil): publications flow
	bFailed                       // done(err): its Unsubscribe is still owed
)

// channel is one channel with at least one local member or a broker
// operation in flight.
type channel struct {
	name string
	sh   *stripe
	// st packs epoch<<2 | brokerState so that a loop joining an active
	// channel reads it without the lock. Written under sh.mu.
	st atomic.Uint64

	// Guarded by sh.mu.
	active  []*loopSubs // loops holding members; Deliver fans out to these
	epoch   uint32      // number of the latest Subscribe call (never 0)
	bstate  brokerState
	needSub bool // a member waits for a fresh Subscribe (state idle or failed)
	busy    bool // a goroutine is issuing broker calls for this channel

	// Set at creation from the channel's namespace, then read-only.
	hist        history.Options // zero: no history (or a broker without it)
	recoveryMax int
	stream      *streamState     // with hist: where the stream stands here (gaprepair.go)
	replays     *replayCache     // with hist: frames shared by concurrent replays (replaycache.go)
	presence    *access.Presence // the namespace's presence options; nil without presence
}

func (ch *channel) state() (brokerState, uint32) {
	v := ch.st.Load()
	return brokerState(v & 3), uint32(v >> 2)
}

// setState records the broker state; caller holds ch.sh.mu.
func (ch *channel) setState(s brokerState) {
	ch.bstate = s
	ch.st.Store(uint64(ch.epoch)<<2 | uint64(s))
}

// nextEpoch is the epoch the next Subscribe call will carry; 0 means
// "confirmed" in a member, so it is skipped on wrap-around.
func (ch *channel) nextEpoch() uint32 {
	if e := ch.epoch + 1; e != 0 && e != waitRead {
		return e
	}
	return 1
}

// loopSubs holds one channel's members on one loop.
type loopSubs struct {
	ch      *channel
	loop    int32
	pos     int32    // index in ch.active; guarded by sh.mu
	members []member // loop-owned

	// History channels, loop-owned: the stream position of the last frame
	// this loop handed out (offset 0: none yet). A member joining here has
	// everything up to it behind it and everything after it ahead.
	seen  uint64
	epoch string
	// catching counts the members with mCatchup: fan-out looks at members'
	// flags only while some are (fanoutCatching).
	catching int32
}

// Member flags.
const (
	mHasID   uint8 = 1 << iota // the pending subscribe carried an id
	mSince                     // the pending subscribe carried since
	mDups                      // repeated subscribes wait with it (subTable.dups)
	mCatchup                   // recovered: skips live frames it already has (subTable.catch)
	mJoined                    // a member of its presence channel's store (presence.go)
	mRepeat                    // a repeated subscribe seen as a member (withRepeats), never stored
)

// waitRead is the wait of a member whose subscribe the broker confirmed but
// whose history read is still out (recovery.go): fan-out skips it like a
// pending one. No Subscribe epoch takes this value (nextEpoch).
const waitRead = ^uint32(0)

// maxDups bounds the repeated subscribes one pending member holds, so a
// client cannot grow the hub's memory by repeating one while it waits.
const maxDups = 16

// dupSub is a subscribe repeated on a connection while its first subscribe
// of that channel still waits for the broker: it shares that outcome.
type dupSub struct {
	id    uint64
	flags uint8 // mHasID, mSince
}

// dupKey names the pending member a dupSub waits with.
type dupKey struct {
	cs *connData
	ls *loopSubs
}

// member is one connection's subscription as seen by fan-out.
type member struct {
	conn  Conn
	cs    *connData
	id    uint64 // id of the subscribe awaiting its reply
	wait  uint32 // epoch whose confirmation it awaits; 0 once confirmed
	flags uint8
}

// connData is the hub's per-connection state (Conn.SetData).
//
// It is 80 bytes, exactly a size class: loop, the flags, queries and listed
// share one word (a new field must not push it to the 96-byte class).
type connData struct {
	conn  Conn
	loop  uint16 // New allows at most 1<<16 loops
	flags uint8  // csClosed, csCounted
	// queries counts its presence queries out (maxPresenceQueries).
	queries uint8
	// listed is 0 until the connection is registered with the Registrar
	// and the index (register), then 1 + the seconds from the hub's start
	// to its opening: its connected_at, which the Registrar's walk reads
	// (it never changes while listed). Its id is ConnID, never stored.
	listed uint32
	subs   []connSub
	ident  access.Identity // from its token; zero for an anonymous connection (User is never empty otherwise)
	limits *connLimits     // rate-limit state; nil when no limit is configured
}

const (
	csClosed  = 1 << iota // closeConn ran: replies and frames still on their way are dropped
	csCounted             // holds one of its user's AuthConfig.MaxConnsPerUser (userCounts)
)

func (cs *connData) closed() bool { return cs.flags&csClosed != 0 }

// user is the connection's authenticated user ("" when anonymous).
func (cs *connData) user() string { return cs.ident.User }

// identity is what the access policy is asked about: nil when anonymous.
func (cs *connData) identity() *access.Identity {
	if cs.ident.User == "" {
		return nil
	}
	return &cs.ident
}

// connSub locates one of the connection's members.
type connSub struct {
	ls  *loopSubs
	idx int32
}

// find returns the index in cs.subs of the channel name, or -1.
func (cs *connData) find(name []byte) int {
	for k := range cs.subs {
		if cs.subs[k].ls.ch.name == string(name) {
			return k
		}
	}
	return -1
}

// setIdx records that the member for ls moved to index i.
func (cs *connData) setIdx(ls *loopSubs, i int) {
	for k := range cs.subs {
		if cs.subs[k].ls == ls {
			cs.subs[k].idx = int32(i)
			return
		}
	}
}

// subTableEvents receives the outcome of pending subscriptions, on the
// member's loop goroutine.
type subTableEvents interface {
	// confirmed: m is ls's member, or a repeat of it (a copy) after it.
	confirmed(ls *loopSubs, m *member)
	// failed is called after m was removed (its broker subscription failed).
	failed(m *member)
}

// subTable is the channel table plus the lazy broker subscriptions.
type subTable struct {
	stripes [numStripes]stripe
	broker  Broker
	posters []Poster
	events  subTableEvents
	// maxSubs caps the channels one connection holds (0: no cap), which
	// also bounds the linear scans of connData.subs.
	maxSubs int
	// dups holds, per loop and owned by it, the repeated subscribes waiting
	// with a pending member. They are rare, so members carry only a flag
	// (mDups) and cost nothing more.
	dups []map[dupKey][]dupSub
	// catch holds, per loop and owned by it, where each recovered member
	// (mCatchup) stands: live frames up to it are already its.
	catch []map[dupKey]catchup
	// sinces holds, per loop and owned by it, the since and epoch of pending
	// subscribes of history channels (mSince), until their confirmation.
	sinces []map[dupKey]sinceReq
	// namespace gives a new channel its history options (nil: none).
	namespace func(channel string) (history.Options, int)
	// presenceOf gives a new channel its presence options (nil: none);
	// left is told about every removed member that had joined (mJoined).
	presenceOf func(channel string) *access.Presence
	left       func(cs *connData, ls *loopSubs)

	channels   atomic.Int64 // channels in the table (gauge)
	brokerSubs atomic.Int64 // Subscribe calls minus Unsubscribe calls (gauge)
	members    atomic.Int64 // local subscriptions (gauge)
}

func newSubTable(b Broker, posters []Poster, ev subTableEvents) *subTable {
	r := &subTable{broker: b, posters: posters, events: ev, dups: make([]map[dupKey][]dupSub, len(posters)),
		catch: make([]map[dupKey]catchup, len(posters)), sinces: make([]map[dupKey]sinceReq, len(posters))}
	for i := range r.catch {
		r.catch[i] = make(map[dupKey]catchup)
		r.sinces[i] = make(map[dupKey]sinceReq)
	}
	for i := range r.stripes {
		r.stripes[i].m = make(map[string]*channel)
	}
	return r
}

// ChannelHash is FNV-1a of a channel name: what spreads channels over lock
// stripes here and over a broker's workers, so that one channel always lands
// in the same place.
func ChannelHash[T string | []byte](s T) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

func (r *subTable) stripeOf(name []byte) *stripe { return &r.stripes[ChannelHash(name)%numStripes] }

func (r *subTable) stripeOfString(name string) *stripe {
	return &r.stripes[ChannelHash(name)%numStripes]
}

// subResult tells the caller of subscribe what to answer now.
type subResult uint8

const (
	subOK      subResult = iota // subscribed and confirmed: answer ok now
	subPending                  // the answer comes through subTableEvents
	subAlready                  // the connection already holds it: answer ok now
	subDupWait                  // it holds it, still pending: answered with the first
	subDupFull                  // it holds it, pending, with maxDups repeats waiting
	subFull                     // it holds maxSubs channels already: refused
)

// subscribe adds cs to channel name on loop (the caller's loop goroutine).
// name must be valid.
func (r *subTable) subscribe(cs *connData, name []byte, id uint64, flags uint8) subResult {
	if k := cs.find(name); k >= 0 {
		return r.repeat(cs, k, id, flags)
	}
	if r.maxSubs > 0 && len(cs.subs) >= r.maxSubs {
		return subFull
	}
	loop := int(cs.loop)
	sh := r.stripeOf(name)
	sh.mu.RLock()
	ch := sh.m[string(name)]
	var ls *loopSubs
	if ch != nil {
		ls = ch.loopSubs(loop)
	}
	sh.mu.RUnlock()

	var idx int
	if ls != nil {
		// This loop already holds members, so ls stays active until this
		// goroutine removes the last one: joining it needs no lock.
		idx = r.add(cs, ls, id, flags)
		switch st, e := ch.state(); st {
		case bConfirmed:
			return subOK
		case bPending:
			ls.members[idx].wait = e
			return subPending
		}
		sh.mu.Lock() // idle or failed: a new Subscribe is needed
	} else {
		sh.mu.Lock()
		ch = sh.m[string(name)]
		if ch == nil {
			ch = &channel{name: string(name), sh: sh}
			if r.namespace != nil {
				ch.hist, ch.recoveryMax = r.namespace(ch.name)
				if ch.hist.On() {
					ch.stream, ch.replays = &streamState{}, &replayCache{}
				}
			}
			if r.presenceOf != nil {
				ch.presence = r.presenceOf(ch.name)
			}
			sh.m[ch.name] = ch
			r.channels.Add(1)
		}
		ls = &loopSubs{ch: ch, loop: int32(loop), pos: int32(len(ch.active))}
		ch.active = append(ch.active, ls)
		idx = r.add(cs, ls, id, flags)
	}
	// Under sh.mu: the state cannot change until we unlock.
	var run bool
	switch ch.bstate {
	case bConfirmed:
		sh.mu.Unlock()
		return subOK
	case bPending:
		ls.members[idx].wait = ch.epoch
	default:
		ch.needSub = true
		ls.members[idx].wait = ch.nextEpoch()
		run = ch.claim()
	}
	sh.mu.Unlock()
	if run {
		r.reconcile(ch)
	}
	return subPending
}

// repeat handles a subscribe of cs.subs[k], which cs already holds: ok now
// when it is confirmed, else it waits with the pending member.
func (r *subTable) repeat(cs *connData, k int, id uint64, flags uint8) subResult {
	ls := cs.subs[k].ls
	m := &ls.members[cs.subs[k].idx]
	if m.wait == 0 {
		return subAlready
	}
	key := dupKey{cs, ls}
	d := r.dups[cs.loop]
	if len(d[key]) >= maxDups {
		return subDupFull
	}
	if d == nil {
		d = make(map[dupKey][]dupSub)
		r.dups[cs.loop] = d
	}
	d[key] = append(d[key], dupSub{id: id, flags: flags})
	m.flags |= mDups
	return subDupWait
}

// takeDups removes and returns the repeats waiting with m, the member of cs
// in ls (on its loop).
func (r *subTable) takeDups(cs *connData, ls *loopSubs, m *member) []dupSub {
	if m.flags&mDups == 0 {
		return nil
	}
	m.flags &^= mDups
	key := dupKey{cs, ls}
	d := r.dups[cs.loop]
	ds := d[key]
	delete(d, key)
	return ds
}

// withRepeats calls f for m and then for each repeat that waited with it,
// seen as a member: they share m's one outcome.
func withRepeats(m *member, ds []dupSub, f func(*member)) {
	f(m)
	for _, d := range ds {
		dm := member{conn: m.conn, cs: m.cs, id: d.id, flags: d.flags | mRepeat}
		f(&dm)
	}
}

// sinceReq is a pending subscribe's since and epoch.
type sinceReq struct {
	since uint64
	epoch string
}

// holdSince keeps the since of cs's pending member of ls.
func (r *subTable) holdSince(cs *connData, ls *loopSubs, since uint64, epoch string) {
	r.sinces[cs.loop][dupKey{cs, ls}] = sinceReq{since, epoch}
}

// takeSince returns and forgets what holdSince kept for m.
func (r *subTable) takeSince(cs *connData, ls *loopSubs, m *member) (uint64, string) {
	if m.flags&mSince == 0 {
		return 0, ""
	}
	key := dupKey{cs, ls}
	s := r.sinces[cs.loop][key]
	delete(r.sinces[cs.loop], key)
	return s.since, s.epoch
}

// loopSubs finds loop's members of ch; caller holds ch.sh.mu (read or write).
func (ch *channel) loopSubs(loop int) *loopSubs {
	for _, ls := range ch.active {
		if int(ls.loop) == loop {
			return ls
		}
	}
	return nil
}

// add appends a member for cs to ls and returns its index.
func (r *subTable) add(cs *connData, ls *loopSubs, id uint64, flags uint8) int {
	idx := len(ls.members)
	ls.members = append(ls.members, member{conn: cs.conn, cs: cs, id: id, flags: flags})
	cs.subs = append(cs.subs, connSub{ls: ls, idx: int32(idx)})
	r.members.Add(1)
	return idx
}

// unsubscribe removes cs from channel name, returning the removed member and
// the repeats that waited with it (the caller answers still pending
// subscribes), or false when cs did not hold it.
func (r *subTable) unsubscribe(cs *connData, name []byte) (member, []dupSub, bool) {
	k := cs.find(name)
	if k < 0 {
		return member{}, nil, false
	}
	m, ds := r.remove(cs, k)
	return m, ds, true
}

// closeConn removes every subscription of a closing connection.
func (r *subTable) closeConn(cs *connData) {
	cs.flags |= csClosed
	for k := len(cs.subs) - 1; k >= 0; k-- {
		r.remove(cs, k)
	}
	cs.subs = nil
}

// remove deletes cs.subs[k] and its member (swap-remove in both slices),
// returning it and the repeats that waited with it.
func (r *subTable) remove(cs *connData, k int) (member, []dupSub) {
	s := cs.subs[k]
	ls, i := s.ls, int(s.idx)
	m := ls.members[i]
	ds := r.takeDups(cs, ls, &m)
	if m.flags&mCatchup != 0 {
		delete(r.catch[cs.loop], dupKey{cs, ls})
		ls.catching--
	}
	if m.flags&mSince != 0 && m.wait != 0 {
		delete(r.sinces[cs.loop], dupKey{cs, ls})
	}
	if m.flags&mJoined != 0 && r.left != nil {
		r.left(cs, ls)
	}
	last := len(ls.members) - 1
	if i != last {
		moved := ls.members[last]
		ls.members[i] = moved
		moved.cs.setIdx(ls, i)
	}
	ls.members[last] = member{}
	ls.members = ls.members[:last]

	n := len(cs.subs) - 1
	cs.subs[k] = cs.subs[n]
	cs.subs[n] = connSub{}
	cs.subs = cs.subs[:n]
	r.members.Add(-1)

	if last == 0 {
		r.leave(ls)
	}
	return m, ds
}

// leave retires ls, whose last member just left; when it was the channel's
// last loop the broker subscription is dropped.
func (r *subTable) leave(ls *loopSubs) {
	ch := ls.ch
	sh := ch.sh
	sh.mu.Lock()
	n := len(ch.active) - 1
	moved := ch.active[n]
	ch.active[ls.pos] = moved
	moved.pos = ls.pos
	ch.active[n] = nil
	ch.active = ch.active[:n]
	run := n == 0 && ch.claim()
	sh.mu.Unlock()
	if run {
		r.reconcile(ch)
	}
}

// claim makes the caller the one goroutine issuing broker calls for ch;
// caller holds ch.sh.mu.
func (ch *channel) claim() bool {
	if ch.busy {
		return false // the busy goroutine re-checks the state before leaving
	}
	ch.busy = true
	return true
}

// reconcile brings the broker subscription in line with the members: it
// issues Subscribe or Unsubscribe, outside the lock, one at a time, until
// nothing is owed, then releases the claim and drops the channel when it is
// empty. Only the claimant runs it, so calls for a channel reach the broker
// in order and strictly alternate Subscribe, Unsubscribe.
func (r *subTable) reconcile(ch *channel) {
	sh := ch.sh
	sh.mu.Lock()
	for {
		switch {
		case ch.bstate == bFailed || (len(ch.active) == 0 && ch.bstate != bIdle):
			ch.setState(bIdle)
			sh.mu.Unlock()
			r.brokerSubs.Add(-1)
			r.broker.Unsubscribe(ch.name)
			sh.mu.Lock()
		case ch.bstate == bIdle && ch.needSub && len(ch.active) > 0:
			ch.needSub = false
			ch.epoch = ch.nextEpoch()
			ch.setState(bPending)
			e := ch.epoch
			sh.mu.Unlock()
			r.brokerSubs.Add(1)
			r.broker.Subscribe(ch.name, func(err error) { r.subscribed(ch, e, err) })
			sh.mu.Lock()
		default:
			ch.busy = false
			if len(ch.active) == 0 && ch.bstate == bIdle {
				ch.needSub = false
				if sh.m[ch.name] == ch {
					delete(sh.m, ch.name)
					r.channels.Add(-1)
				}
			}
			sh.mu.Unlock()
			return
		}
	}
}

// subscribed is the broker's answer to the Subscribe of epoch e; any
// goroutine, possibly inside the Subscribe call.
func (r *subTable) subscribed(ch *channel, e uint32, err error) {
	sh := ch.sh
	sh.mu.Lock()
	if ch.bstate != bPending || ch.epoch != e {
		sh.mu.Unlock() // superseded: its members left already
		return
	}
	run := false
	if err == nil {
		ch.setState(bConfirmed)
	} else {
		ch.setState(bFailed)
		run = ch.claim()
	}
	// Every member waiting for e is on a loop active now: it joined while
	// the state was pending e, and its loop stays active while it is there.
	targets := make([]*loopSubs, len(ch.active))
	copy(targets, ch.active)
	sh.mu.Unlock()
	ok := err == nil
	for _, ls := range targets {
		r.posters[ls.loop].Post(func() { r.settle(ls, e, ok) })
	}
	if run {
		r.reconcile(ch)
	}
}

// settle runs on ls's loop: members waiting for epoch e learn the outcome.
func (r *subTable) settle(ls *loopSubs, e uint32, ok bool) {
	if ok {
		for i := range ls.members {
			if m := &ls.members[i]; m.wait == e {
				m.wait = 0
				if ls.ch.hist.On() {
					// The stream read answers the repeats with the member.
					r.events.confirmed(ls, m)
					continue
				}
				withRepeats(m, r.takeDups(m.cs, ls, m), func(m *member) { r.events.confirmed(ls, m) })
			}
		}
		return
	}
	// Backwards, so that swap-remove only moves members already visited.
	for i := len(ls.members) - 1; i >= 0; i-- {
		if i >= len(ls.members) || ls.members[i].wait != e {
			continue
		}
		cs := ls.members[i].cs
		for k := range cs.subs {
			if cs.subs[k].ls == ls {
				m, ds := r.remove(cs, k)
				withRepeats(&m, ds, r.events.failed)
				break
			}
		}
	}
}
