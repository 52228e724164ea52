package hub

import (
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/cpu"

	"github.com/wshub/wshub/hub/history"
	"github.com/wshub/wshub/wsproto"
)

// loopState is the hub's side of one event loop: the inbox that carries
// publications to it and the state only its goroutine touches.
type loopState struct {
	hub    *Hub
	idx    int32
	poster Poster
	run    func() // cached l.runInbox, so posting it does not allocate

	mu    sync.Mutex
	inbox []inboxItem // filled by Deliver, drained by runInbox
	spare []inboxItem // the other buffer of the swap; nil while in use

	// Loop goroutine only.
	scratch []byte
	freePub []*pendingPub
	reads   map[dupKey]*streamRead     // history reads out, by member (recovery.go)
	replays map[*connData]*replayQueue // paced replays (replay.go)
	// infos holds the info claims of its connections that have one, only
	// when some namespace has presence (presence.go).
	infos map[*connData]json.RawMessage

	stats loopCounters
	_     cpu.CacheLinePad
}

// inboxItem is one publication for one loop: the shared frame and the
// channel's members on that loop; or, with ls nil, an addressed send to the
// one connection cs.
type inboxItem struct {
	ls *loopSubs
	cs *connData
	f  *wsproto.Frame
	t  int64 // monotonic ns at Deliver, for the latency histogram

	off   uint64 // a history channel's publication: its stream position
	epoch string
}

func newLoopState(h *Hub, i int, p Poster) *loopState {
	l := &loopState{hub: h, idx: int32(i), poster: p, scratch: make([]byte, 0, 256)}
	l.run = l.runInbox
	return l
}

// clockBase anchors monotonic timestamps.
var clockBase = time.Now()

func nanotime() int64 { return int64(time.Since(clockBase)) }

// message frame layout: {"op":"message","channel":"<ch>"[,"offset":N],"data":<data>}
const (
	msgHead   = `{"op":"message","channel":"`
	msgMid    = `","data":`
	msgOffset = `","offset":`
	msgData   = `,"data":`
)

// Deliver is the broker's Sink: it encodes the message frame once and queues
// it on every loop holding subscribers of channel, one item per loop. Calls
// for one channel never overlap (Sink contract), and every loop's inbox is
// FIFO, so all subscribers see one order.
func (h *Hub) Deliver(channel string, data []byte) {
	if len(data) > 0 && data[0] == eventMark {
		h.deliverEvent(channel, data) // a join or leave (joinleave.go)
		return
	}
	h.deliver(channel, history.Position{}, data)
}

// DeliverAt is Deliver for a publication of a history channel's stream: its
// frame carries the offset, and a publication that skips offsets waits
// while the hub reads the missing ones (gaprepair.go).
func (h *Hub) DeliverAt(channel string, pos history.Position, data []byte) {
	h.deliver(channel, pos, data)
}

// deliver hands one publication to the loops; offset 0 means none.
func (h *Hub) deliver(channel string, pos history.Position, data []byte) {
	sh := h.table.stripeOfString(channel)
	sh.publications.Add(1)
	sh.mu.RLock()
	ch := sh.m[channel]
	switch {
	case ch == nil || len(ch.active) == 0:
	case pos.Offset != 0 && ch.stream != nil:
		h.deliverStream(ch, pos, data)
	default:
		h.fanout(ch, pos, data)
	}
	sh.mu.RUnlock()
}

// fanout encodes one message frame and queues it on every loop holding
// members of ch; the caller holds ch.sh.mu (read).
func (h *Hub) fanout(ch *channel, pos history.Position, data []byte) {
	h.fanoutFrame(ch, pos, buildMessage(ch.name, pos, data))
}

// fanoutFrame queues f (taking over its reference) on every loop holding
// members of ch; the caller holds ch.sh.mu (read).
func (h *Hub) fanoutFrame(ch *channel, pos history.Position, f *wsproto.Frame) {
	it := inboxItem{f: f, t: nanotime(), off: pos.Offset, epoch: pos.Epoch}
	for _, ls := range ch.active {
		f.Retain()
		it.ls = ls
		h.loops[ls.loop].enqueue(it)
	}
	f.Release()
}

// buildMessage encodes one message frame; offset 0 means none. The first
// publication of a stream (offset 1) carries its epoch too: a subscriber
// whose ok came while the stream did not exist (epoch "") learns it there.
func buildMessage(channel string, pos history.Position, data []byte) *wsproto.Frame {
	if pos.Offset == 1 && pos.Epoch != "" {
		return firstMessage(channel, pos, data)
	}
	var num [20]byte
	off := num[:0]
	n := len(msgHead) + len(channel) + len(msgMid) + len(data) + 1
	if pos.Offset != 0 {
		off = strconv.AppendUint(num[:0], pos.Offset, 10)
		n += len(msgOffset) + len(off) + len(msgData) - len(msgMid)
	}
	f, p := wsproto.BuildFrame(ws.OpText, n)
	i := copy(p, msgHead)
	i += copy(p[i:], channel)
	if pos.Offset != 0 {
		i += copy(p[i:], msgOffset)
		i += copy(p[i:], off)
		i += copy(p[i:], msgData)
	} else {
		i += copy(p[i:], msgMid)
	}
	i += copy(p[i:], data)
	p[i] = '}'
	return f
}

// firstMessage is buildMessage for a stream's first publication, once per
// epoch: composed with appends (the epoch is escaped), then copied.
func firstMessage(channel string, pos history.Position, data []byte) *wsproto.Frame {
	b := make([]byte, 0, len(msgHead)+len(channel)+len(data)+len(pos.Epoch)+48)
	b = append(append(b, msgHead...), channel...)
	b = append(b, `","offset":1,"epoch":`...)
	b = appendJSONString(b, pos.Epoch)
	return textFrame(append(append(append(b, msgData...), data...), '}'))
}

// pushDirect queues an addressed send (taking over f's reference).
func (l *loopState) pushDirect(cs *connData, f *wsproto.Frame) {
	l.enqueue(inboxItem{cs: cs, f: f})
}

// enqueue queues one item; only the one that finds the inbox empty posts
// the drain, so a burst costs one Post.
func (l *loopState) enqueue(it inboxItem) {
	l.mu.Lock()
	first := len(l.inbox) == 0
	l.inbox = append(l.inbox, it)
	l.mu.Unlock()
	if first {
		l.poster.Post(l.run)
	}
}

// runInbox drains the inbox on the loop goroutine: each item's frame goes to
// every confirmed local member, then the loop's reference is released.
func (l *loopState) runInbox() {
	l.mu.Lock()
	items := l.inbox
	l.inbox, l.spare = l.spare, nil
	l.mu.Unlock()

	var sent, dropped uint64
	for i := range items {
		it := &items[i]
		if it.ls == nil {
			// Addressed send: the connection may have closed since (its
			// closed flag is written on this loop).
			if !it.cs.closed() && it.cs.conn.Send(it.f) {
				l.stats.directs.Add(1)
			} else {
				dropped++
			}
			it.f.Release()
			*it = inboxItem{}
			continue
		}
		ls := it.ls
		if it.off != 0 {
			// Stream frames come in order and once each (deliverStream).
			ls.seen, ls.epoch = it.off, it.epoch
		}
		if ls.catching != 0 && it.off != 0 {
			s, d := l.fanoutCatching(ls, it)
			sent, dropped = sent+s, dropped+d
		} else {
			for j := range ls.members {
				m := &ls.members[j]
				if m.wait != 0 {
					continue // its subscribe is not confirmed yet
				}
				if m.conn.Send(it.f) {
					sent++
				} else {
					dropped++
				}
			}
		}
		it.f.Release()
		l.stats.latency.observe(nanotime() - it.t)
		*it = inboxItem{}
	}
	l.stats.deliveries.Add(sent)
	if dropped != 0 {
		l.stats.dropped.Add(dropped)
	}

	if cap(items) > maxSpareItems {
		items = nil // a one-off burst: do not keep its buffer forever
	}
	l.mu.Lock()
	l.spare = items[:0]
	l.mu.Unlock()
}

// fanoutCatching is runInbox's member loop for a stream frame on a channel
// where some members recovered and are catching up (ls.catching): each of
// those is asked whether the frame is its (pass). A frame outside the
// stream (offset 0: a join or leave) is not part of a catch-up: it takes the
// plain loop, neither waiting nor ending one.
func (l *loopState) fanoutCatching(ls *loopSubs, it *inboxItem) (sent, dropped uint64) {
	for j := range ls.members {
		m := &ls.members[j]
		if m.wait != 0 || m.flags&mCatchup != 0 && !l.pass(ls, m, it) {
			continue
		}
		if m.conn.Send(it.f) {
			sent++
		} else {
			dropped++
		}
	}
	return sent, dropped
}

// maxSpareItems caps the inbox buffer a loop keeps between bursts.
const maxSpareItems = 1 << 14

// reply sends a composed reply and keeps the grown scratch buffer.
func (l *loopState) reply(c Conn, b []byte) {
	l.scratch = b[:0]
	sendJSON(c, b)
}

// replyError sends an error reply and counts it.
func (l *loopState) replyError(c Conn, hasID bool, id uint64, e *Error) {
	l.stats.errors[codeIndex(e.Code)].Add(1)
	l.reply(c, appendError(l.scratch[:0], hasID, id, e))
}
