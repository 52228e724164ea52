package presence

import (
	"container/heap"
	"time"
)

// Linger holds leaves back so that a user who reconnects quickly is not
// announced as gone and back: a leave waits until its due time, and a join
// of the same user on the same channel before then drops both. It is a
// deterministic core: time is passed in, nothing runs by itself (its owner
// asks for what is Due, e.g. from one timer per hub), and its owner
// serializes calls. The table is bounded: past its capacity a leave is not
// held (Hold reports false) and goes out at once.
type Linger struct {
	max   int
	byKey map[lingerKey][]*Held // FIFO per channel and user: a join takes the oldest
	due   heldHeap
}

// Held is a leave waiting for its due time.
type Held struct {
	Channel, User, Conn string
	Due                 time.Time
	idx                 int // in the heap
}

type lingerKey struct{ channel, user string }

// NewLinger returns a table that holds at most limit leaves (at least 1).
func NewLinger(limit int) *Linger {
	return &Linger{max: max(limit, 1), byKey: make(map[lingerKey][]*Held)}
}

// Hold keeps conn's leave of channel until due. It reports false, holding
// nothing, when the leave must go out now: the connection was anonymous
// (nothing ties its reconnect to it) or the table is full.
func (l *Linger) Hold(channel, user, conn string, due time.Time) bool {
	if user == "" || len(l.due) >= l.max {
		return false
	}
	p := &Held{Channel: channel, User: user, Conn: conn, Due: due}
	k := lingerKey{channel, user}
	l.byKey[k] = append(l.byKey[k], p)
	heap.Push(&l.due, p)
	return true
}

// Join reports whether user's join of channel cancels a held leave of the
// same user there (the oldest); then neither is to be sent.
func (l *Linger) Join(channel, user string) bool {
	if user == "" {
		return false
	}
	k := lingerKey{channel, user}
	q := l.byKey[k]
	if len(q) == 0 {
		return false
	}
	heap.Remove(&l.due, q[0].idx)
	l.forget(k, q[0])
	return true
}

// forget drops p from its key's queue (a few entries: one per connection
// of the user that left within the linger).
func (l *Linger) forget(k lingerKey, p *Held) {
	q := l.byKey[k]
	for i := range q {
		if q[i] == p {
			q = append(q[:i], q[i+1:]...)
			break
		}
	}
	if len(q) == 0 {
		delete(l.byKey, k)
		return
	}
	l.byKey[k] = q
}

// Due removes the leaves due at now and appends them to dst, earliest first.
func (l *Linger) Due(now time.Time, dst []Held) []Held {
	for len(l.due) > 0 && !l.due[0].Due.After(now) {
		p := heap.Pop(&l.due).(*Held)
		l.forget(lingerKey{p.Channel, p.User}, p)
		dst = append(dst, *p)
	}
	return dst
}

// Next is the earliest due time; ok is false when nothing is held.
func (l *Linger) Next() (t time.Time, ok bool) {
	if len(l.due) == 0 {
		return time.Time{}, false
	}
	return l.due[0].Due, true
}

// Len is the number of leaves held.
func (l *Linger) Len() int { return len(l.due) }

// heldHeap orders held leaves by due time (container/heap).
type heldHeap []*Held

func (h heldHeap) Len() int           { return len(h) }
func (h heldHeap) Less(i, j int) bool { return h[i].Due.Before(h[j].Due) }
func (h heldHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *heldHeap) Push(x any) {
	p := x.(*Held)
	p.idx = len(*h)
	*h = append(*h, p)
}
func (h *heldHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return p
}
