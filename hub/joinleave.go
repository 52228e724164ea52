package hub

import (
	"strconv"
	"sync"
	"time"

	"github.com/wshub/wshub/hub/history"
	"github.com/wshub/wshub/hub/presence"
	"github.com/wshub/wshub/wsproto"
)

// Joins and leaves (namespaces with join_leave) reach the channel's
// subscribers on every instance as publications on the channel itself,
// through the broker: no extra broker subscription (an instance receives
// them exactly when it has subscribers), and they keep their place among
// the channel's messages. Their payload starts with eventMark, a byte no
// JSON text starts with: a client publish and POST /api/publish carry a
// validated JSON value, so neither can forge one, and no channel name is
// involved that a client could subscribe to (an internal channel name with
// '#' could be: `ws#x` is a valid user-limited channel). They go through
// Publish, never PublishHistory: they get no offset and stay out of
// history, and receiving hubs render them instead of a message:
//
//	~<kind><len>:<conn><user>    kind j (join) or l (leave); len is conn's
//	                             decimal byte length, user is the rest
//
// The linger (join_leave_linger) is applied where they are received, so a
// user who reconnects through another instance is suppressed too: a leave
// is held until its due time and dropped with the join that cancels it
// (presence.Linger). Held leaves go out from one timer per hub, armed for
// the earliest one (rounded up to lingerTick, so that a churn of leaves
// costs at most one wake-up per tick) and idle when none is held.

// eventMark starts a join or leave payload. Redis history payloads start
// with '!' (redis/doc.go); '~' is another byte no JSON text starts with.
const eventMark = '~'

// Event kinds.
const (
	evJoin  = 'j'
	evLeave = 'l'
)

// Bounds of the held leaves.
const (
	maxHeldLeaves = 1 << 16 // past it leaves go out at once
	lingerTick    = 100 * time.Millisecond
)

// appendEvent writes the payload of conn's join or leave.
func appendEvent(b []byte, kind byte, conn, user string) []byte {
	b = append(b, eventMark, kind)
	b = strconv.AppendInt(b, int64(len(conn)), 10)
	b = append(b, ':')
	b = append(b, conn...)
	return append(b, user...)
}

// parseEvent reads a payload appendEvent wrote.
func parseEvent(data []byte) (kind byte, conn, user string, ok bool) {
	if len(data) < 4 || data[0] != eventMark || (data[1] != evJoin && data[1] != evLeave) {
		return 0, "", "", false
	}
	n, i := 0, 2
	for ; i < len(data) && data[i] >= '0' && data[i] <= '9' && n <= len(data); i++ {
		n = n*10 + int(data[i]-'0')
	}
	if i == 2 || i >= len(data) || data[i] != ':' || n > len(data)-i-1 {
		return 0, "", "", false
	}
	i++
	return data[1], string(data[i : i+n]), string(data[i+n:]), true
}

// publishEvent publishes conn's join or leave of channel (on a loop).
func (h *Hub) publishEvent(l *loopState, channel string, kind byte, conn, user string) {
	b := appendEvent(l.scratch[:0], kind, conn, user)
	h.broker.Publish(channel, b, h.eventDone)
	l.scratch = b[:0]
}

// eventPublished is the broker's answer to publishEvent: a join or leave
// the broker did not take is lost (counted), like a publication.
func (h *Hub) eventPublished(err error) {
	if err != nil {
		h.stats.eventsFailed.Add(1)
	}
}

// deliverEvent handles a join or leave the broker delivered: held, dropped
// with the join it cancels, or handed to the channel's subscribers here.
func (h *Hub) deliverEvent(channel string, data []byte) {
	kind, conn, user, ok := parseEvent(data)
	ns := h.policy.Lookup(channel)
	if !ok || ns == nil || !ns.Presence.JoinLeave {
		h.stats.eventsDropped.Add(1) // malformed, or this instance's namespaces disagree
		return
	}
	if d := ns.Presence.Linger; d > 0 {
		switch {
		case kind == evJoin && h.joinLeave.join(channel, user):
			h.stats.eventsSuppressed.Add(2) // this join and the leave it cancelled
			return
		case kind == evLeave && h.joinLeave.hold(channel, user, conn, d):
			return
		}
	}
	h.sendEvent(channel, kind, conn, user)
}

// sendEvent hands a join or leave frame to the channel's local subscribers.
func (h *Hub) sendEvent(channel string, kind byte, conn, user string) {
	sh := h.table.stripeOfString(channel)
	sh.mu.RLock()
	if ch := sh.m[channel]; ch != nil && len(ch.active) > 0 {
		h.stats.eventsSent.Add(1)
		h.fanoutFrame(ch, history.Position{}, buildEvent(channel, kind, conn, user))
	}
	sh.mu.RUnlock()
}

// buildEvent encodes {"op":"join"|"leave","channel":C,"user":U,"conn":ID}.
func buildEvent(channel string, kind byte, conn, user string) *wsproto.Frame {
	b := make([]byte, 0, 48+len(channel)+len(conn)+len(user))
	if kind == evJoin {
		b = append(b, `{"op":"join","channel":`...)
	} else {
		b = append(b, `{"op":"leave","channel":`...)
	}
	b = appendJSONString(b, channel)
	b = appendJSONString(append(b, `,"user":`...), user)
	b = appendJSONString(append(b, `,"conn":`...), conn)
	return textFrame(append(b, '}'))
}

// lingerer holds received leaves back (presence.Linger) and sends them
// when due, from one timer. Owned by its mu; broker goroutines (Deliver)
// and the timer call it.
type lingerer struct {
	h     *Hub
	now   func() time.Time // time.Now; tests move it by hand
	mu    sync.Mutex
	held  *presence.Linger
	timer *time.Timer // created with the first held leave
	wake  time.Time   // when timer fires; zero while it is not armed
}

func (j *lingerer) init(h *Hub) {
	j.h, j.now, j.held = h, time.Now, presence.NewLinger(maxHeldLeaves)
}

// join reports whether user's join of channel cancels a held leave.
func (j *lingerer) join(channel, user string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.held.Join(channel, user)
}

// hold holds conn's leave of channel for d; false: send it now.
func (j *lingerer) hold(channel, user, conn string, d time.Duration) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.held.Hold(channel, user, conn, j.now().Add(d)) {
		return false
	}
	j.armLocked()
	return true
}

// armLocked makes the timer fire at the earliest due time, rounded up to
// lingerTick, unless it fires before that already; caller holds mu.
func (j *lingerer) armLocked() {
	next, ok := j.held.Next()
	if !ok {
		return
	}
	wake := next.Add(lingerTick - 1).Truncate(lingerTick)
	if !j.wake.IsZero() && !wake.Before(j.wake) {
		return
	}
	j.wake = wake
	d := wake.Sub(j.now())
	if j.timer == nil {
		j.timer = time.AfterFunc(d, j.fire)
	} else {
		j.timer.Reset(d)
	}
}

// fire sends the leaves that are due and re-arms the timer for the rest.
func (j *lingerer) fire() {
	j.mu.Lock()
	j.wake = time.Time{}
	due := j.held.Due(j.now(), nil)
	j.armLocked()
	j.mu.Unlock()
	for _, l := range due {
		j.h.sendEvent(l.Channel, evLeave, l.Conn, l.User)
	}
}

// heldLeaves is the number of leaves held (metrics, tests).
func (j *lingerer) heldLeaves() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.held.Len()
}
