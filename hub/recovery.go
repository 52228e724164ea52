package hub

import (
	"github.com/wshub/wshub/hub/history"
	"github.com/wshub/wshub/wsproto"
)

// Subscribing to a history channel (PROTOCOL.md, "Ordering and delivery").
//
// The broker subscription comes first, so every later publication reaches
// the loop live; then the stream is read: its position for the ok, and, for
// a subscribe with since, what the client missed. The member meanwhile waits
// (waitRead) and gets no live frame. When the read is back on the loop, the
// loop's own position (loopSubs.seen) says where live delivery stands:
//   - seen beyond the read: live frames the member did not get were handed
//     out since the read; read again from the read's end (at most maxReads);
//   - otherwise the ok goes out with the read's position, then the replay,
//     and the member turns live, skipping the live frames up to that
//     position that are still on their way (mCatchup). No gap, no duplicate.
//
// Every read is owned by its loop: l.reads maps the member to its read, so an
// answer for a member that left (or left and came back) is dropped.

// maxReads bounds the reads of one subscribe that keeps falling behind live
// delivery; it then gets "recovered":false and continues live.
const maxReads = 4

// catchup is where a recovered member's history ends: live frames of that
// epoch up to offset are already its (or, when the ok said recovered:false,
// before its time). passed: a later frame went to its replay queue.
type catchup struct {
	offset uint64
	epoch  string
	passed bool
}

// streamRead is one subscribe's history read, from the broker's callback to
// its end on the member's loop.
type streamRead struct {
	h    *Hub
	cs   *connData
	ls   *loopSubs
	id   uint64
	flag uint8 // mHasID, mSince

	since    uint64 // the client's since (mSince)
	epoch    string // the client's epoch; "" when not given
	next     uint64 // where the next read starts
	reads    int
	covered  bool             // every publication after since is in frames so far
	frames   []*wsproto.Frame // the replay so far, oldest first
	pos      history.Position // the stream at the latest read
	err      error
	finishFn func()
}

// readHistory starts the history read of cs's member of ls, which the
// broker just confirmed (or found confirmed): it waits until finish.
func (h *Hub) readHistory(l *loopState, cs *connData, ls *loopSubs, m *member, since uint64, epoch string) {
	m.wait = waitRead
	r := &streamRead{h: h, cs: cs, ls: ls, id: m.id, flag: m.flags & (mHasID | mSince), since: since, epoch: epoch, next: since, covered: true}
	r.finishFn = r.finish
	if l.reads == nil {
		l.reads = make(map[dupKey]*streamRead)
	}
	l.reads[dupKey{cs, ls}] = r
	ls.ch.replays.join()
	r.start()
}

// start issues the next read: the position only for a subscribe without
// since, else up to what recovery may still replay.
func (r *streamRead) start() {
	r.reads++
	limit := 0
	if r.flag&mSince != 0 {
		limit = r.ls.ch.recoveryMax - len(r.frames) + 1 // one more tells "too many"
	}
	r.h.historian.ReadHistory(r.ls.ch.name, r.next, limit, r.answer)
}

// answer takes the broker's read (any goroutine): the entries become replay
// frames now, while they are valid, and the loop finishes.
func (r *streamRead) answer(rd history.Read, err error) {
	r.err = err
	if err == nil {
		if r.reads > 1 && rd.Pos.Epoch != r.pos.Epoch {
			r.covered = false // the stream was reset between two reads
		}
		r.pos = rd.Pos
		r.ls.ch.stream.noteRead(rd.Pos)
		if r.flag&mSince != 0 && r.covered {
			// The frames so far hold since+1 .. next: what is left of the
			// bound is for the rest.
			r.covered = history.Recovered(r.next, r.epoch, r.epoch != "", rd, r.ls.ch.recoveryMax-len(r.frames))
			if r.covered {
				for _, e := range rd.Entries {
					r.frames = append(r.frames, r.ls.ch.replays.frame(r.ls.ch.name, rd.Pos.Epoch, e))
				}
				r.next = rd.Pos.Offset
			}
		}
	}
	r.h.loops[r.cs.loop].poster.Post(r.finishFn)
}

// finish runs on the member's loop once a read is back.
func (r *streamRead) finish() {
	h, cs, ls := r.h, r.cs, r.ls
	l := h.loops[cs.loop]
	key := dupKey{cs, ls}
	k := cs.index(ls)
	if l.reads[key] != r || k < 0 || ls.members[cs.subs[k].idx].wait != waitRead {
		if l.reads[key] == r {
			delete(l.reads, key)
		}
		r.release() // the member left while its read was out
		ls.ch.replays.leave()
		return
	}
	m := &ls.members[cs.subs[k].idx]
	if r.err != nil {
		delete(l.reads, key)
		r.release()
		ls.ch.replays.leave()
		gone, ds := h.table.remove(cs, k)
		withRepeats(&gone, ds, h.failed)
		return
	}
	behind := ls.epoch == r.pos.Epoch && ls.seen > r.pos.Offset
	recovering := r.flag&mSince != 0
	if behind && recovering && r.covered && r.reads < maxReads {
		r.start() // live delivery went past the read: read the rest
		return
	}
	delete(l.reads, key)
	ls.ch.replays.leave() // the frames it took are its own references
	at := r.pos
	recovered := recovering && r.covered && !behind
	if !recovered {
		r.release()
		if behind {
			at.Offset = ls.seen // live from here: nothing to skip
		}
	}
	if r.flag&mHasID != 0 {
		l.reply(cs.conn, appendStreamOK(l.scratch[:0], r.id, at, recovering, recovered, len(r.frames)))
	}
	for _, d := range h.table.takeDups(cs, ls, m) {
		if d.flags&mHasID != 0 {
			l.reply(cs.conn, appendStreamOK(l.scratch[:0], d.id, at, d.flags&mSince != 0, false, 0))
		}
	}
	m.wait = 0
	if len(r.frames) > 0 || ls.epoch != at.Epoch || ls.seen < at.Offset {
		// Live frames up to at may still be on their way to this loop, and
		// later ones must wait behind the replay (pass).
		m.flags |= mCatchup
		ls.catching++
		h.table.catch[cs.loop][key] = catchup{offset: at.Offset, epoch: at.Epoch}
	}
	if len(r.frames) > 0 {
		l.replay(cs, ls, r.frames)
		r.frames = nil
	}
}

// release drops the replay frames of a read that will not be sent.
func (r *streamRead) release() {
	for i, f := range r.frames {
		f.Release()
		r.frames[i] = nil
	}
	r.frames = nil
}

// index returns the index in cs.subs of its member of ls, or -1.
func (cs *connData) index(ls *loopSubs) int {
	for k := range cs.subs {
		if cs.subs[k].ls == ls {
			return k
		}
	}
	return -1
}

// subscribeStream answers a subscribe of a history channel that the broker
// has confirmed: at once when this loop knows where the stream stands and
// the client asks no recovery, else after a read.
func (h *Hub) subscribeStream(l *loopState, cs *connData, ls *loopSubs, m *member, since uint64, epoch string) {
	if m.flags&mSince == 0 && ls.seen != 0 {
		m.wait = 0
		if m.flags&mHasID != 0 {
			l.reply(cs.conn, appendStreamOK(l.scratch[:0], m.id, history.Position{Offset: ls.seen, Epoch: ls.epoch}, false, false, 0))
		}
		return
	}
	h.readHistory(l, cs, ls, m, since, epoch)
}

// streamOptions gives a new channel its namespace's history options.
func (h *Hub) streamOptions(channel string) (history.Options, int) {
	if ns := h.policy.Lookup(channel); ns != nil && ns.History.On() {
		return ns.History, ns.Recovery()
	}
	return history.Options{}, 0
}
