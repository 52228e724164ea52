package hub

import (
	"github.com/wshub/wshub/wsproto"
)

// A replay is paced through the connection's queue: it sends what Room
// allows (leaving half of it to live traffic), then continues when the queue
// has gone out (OnWritable), so a recovering client is never dropped as a
// slow consumer for the replay itself. Live frames of a channel whose replay
// is still queued join the queue behind it, which keeps the channel's order.

// replayQueue is one connection's unsent replay frames; owned by its loop
// (loopState.replays).
type replayQueue struct {
	frames []queued
	head   int
	chans  []*loopSubs // channels whose frames are queued
	limit  int
}

// queued is one frame of a replay queue and the channel it belongs to, so
// that an unsubscribe takes that channel's frames out (forget).
type queued struct {
	f  *wsproto.Frame
	ls *loopSubs
}

// replayHeadroom is how many queued frames per recovery channel a replay
// queue may hold beyond the replays themselves (live frames that arrive
// while they go out); past it the client is a slow consumer.
const replayHeadroom = 1024

// replay queues frames (taking over their references) for cs on its loop.
func (l *loopState) replay(cs *connData, ls *loopSubs, frames []*wsproto.Frame) {
	q := l.replays[cs]
	if q == nil {
		q = &replayQueue{}
		if l.replays == nil {
			l.replays = make(map[*connData]*replayQueue)
		}
		l.replays[cs] = q
	}
	for _, f := range frames {
		q.frames = append(q.frames, queued{f, ls})
	}
	q.chans = append(q.chans, ls)
	q.limit += len(frames) + replayHeadroom
	l.stats.replayed.Add(uint64(len(frames)))
	l.pace(cs, q)
}

// pace sends what the connection's queue has room for, and either asks to
// be called again or, once everything is out, retires the queue.
func (l *loopState) pace(cs *connData, q *replayQueue) {
	c := cs.conn
	n := c.Room() / 2
	for ; n > 0 && q.head < len(q.frames); n-- {
		f := q.frames[q.head].f
		q.frames[q.head] = queued{}
		q.head++
		if !c.Send(f) {
			f.Release()
			l.dropReplay(cs)
			return
		}
		f.Release()
	}
	if q.head < len(q.frames) {
		c.NotifyWritable()
		return
	}
	delete(l.replays, cs)
	for _, ls := range q.chans {
		l.hub.table.caughtUp(cs, ls)
	}
}

// queueLive puts a live frame behind cs's replay; false when the queue is
// over its limit (the caller drops the client as a slow consumer).
func (q *replayQueue) queueLive(ls *loopSubs, f *wsproto.Frame) bool {
	if len(q.frames)-q.head >= q.limit {
		return false
	}
	f.Retain()
	q.frames = append(q.frames, queued{f, ls})
	return true
}

// forget takes ls's frames out of cs's replay queue: cs unsubscribed from
// it, and nothing of a channel may follow the unsubscribe's ok.
func (l *loopState) forget(cs *connData, ls *loopSubs) {
	q := l.replays[cs]
	if q == nil || !q.holds(ls) {
		return
	}
	kept := q.frames[:q.head]
	for _, x := range q.frames[q.head:] {
		if x.ls == ls {
			x.f.Release()
			continue
		}
		kept = append(kept, x)
	}
	clear(q.frames[len(kept):])
	q.frames = kept
	chans := q.chans[:0]
	for _, x := range q.chans {
		if x != ls {
			chans = append(chans, x)
		}
	}
	q.chans = chans
	if q.head == len(q.frames) {
		delete(l.replays, cs)
		for _, x := range q.chans {
			l.hub.table.caughtUp(cs, x)
		}
	}
}

// holds reports whether the queue carries ls's replay.
func (q *replayQueue) holds(ls *loopSubs) bool {
	for _, x := range q.chans {
		if x == ls {
			return true
		}
	}
	return false
}

// dropReplay discards cs's unsent replay (the connection closed or was
// dropped).
func (l *loopState) dropReplay(cs *connData) {
	q := l.replays[cs]
	if q == nil {
		return
	}
	delete(l.replays, cs)
	for i := q.head; i < len(q.frames); i++ {
		q.frames[i].f.Release()
		q.frames[i] = queued{}
	}
}

// OnWritable continues a paced replay once the connection's queue went out.
func (h *Hub) OnWritable(c Conn) {
	cs, _ := c.Data().(*connData)
	if cs == nil || cs.closed() {
		return
	}
	l := h.loops[cs.loop]
	if q := l.replays[cs]; q != nil {
		l.pace(cs, q)
	}
}

// pass decides, in fan-out, whether a live frame goes to a member that
// recovered (mCatchup): not when it already has it; behind its replay
// while that is queued; else it is live from now on.
func (l *loopState) pass(ls *loopSubs, m *member, it *inboxItem) bool {
	key := dupKey{m.cs, ls}
	catch := l.hub.table.catch[m.cs.loop]
	cu := catch[key]
	if !cu.passed && it.epoch == cu.epoch && it.off <= cu.offset {
		return false
	}
	if q := l.replays[m.cs]; q != nil && q.holds(ls) {
		if !q.queueLive(ls, it.f) {
			l.dropReplay(m.cs)
			m.conn.Close(wsproto.ClosePolicy, "slow consumer")
		}
		if !cu.passed {
			cu.passed = true
			catch[key] = cu
		}
		return false
	}
	delete(catch, key)
	m.flags &^= mCatchup
	ls.catching--
	return true
}

// caughtUp ends the catch-up of cs's member of ls once its replay is out,
// if a live frame past its history already went behind the replay.
func (r *subTable) caughtUp(cs *connData, ls *loopSubs) {
	key := dupKey{cs, ls}
	catch := r.catch[cs.loop]
	if cu, ok := catch[key]; ok && cu.passed {
		delete(catch, key)
		if k := cs.index(ls); k >= 0 {
			ls.members[cs.subs[k].idx].flags &^= mCatchup
			ls.catching--
		}
	}
}
