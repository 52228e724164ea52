package redis

import (
	"bytes"
	"encoding/json"
)

// The presence writer's record of this instance's members, and what a batch
// of Joins and Leaves changes in it: a deterministic core (no I/O), which the
// writer turns into commands. The record is the truth the writer rewrites
// Redis from whenever Redis may have lost or missed something.

// presOp is one queued Join (leave false) or Leave.
type presOp struct {
	leave bool
	user  string
	info  json.RawMessage
}

// presMember is one local member of a channel.
type presMember struct {
	user string
	info json.RawMessage
}

// presChan is this instance's members of one channel.
type presChan struct {
	name    string
	keys    presKeys
	members map[string]presMember // conn -> member
	users   map[string]int        // non-empty user -> its local members
	// written: the keys of this instance exist in Redis with their TTL and
	// the channel's set names it; until then a write creates them.
	written bool
	// dirty: a write failed, or Redis lost a key: the whole channel is
	// rewritten (presWriter.resync) instead of being changed.
	dirty bool
	pos   int // index in presLocal.ring
}

// presChange is what a chunk of operations changed in one channel.
type presChange struct {
	set     []string // conns added or changed; their member is in members
	del     []string // conns removed
	in, out []string // users with a first local member / without one any more
	delta   map[string]int
}

func (ch *presChange) reset() {
	ch.set, ch.del, ch.in, ch.out = ch.set[:0], ch.del[:0], ch.in[:0], ch.out[:0]
	clear(ch.delta)
}

func (ch *presChange) empty() bool { return len(ch.set)+len(ch.del) == 0 }

// apply records one operation of conn. An operation that changes nothing
// (a Leave of a non-member, a Join repeating the member) is not a change.
func (c *presChan) apply(conn string, op presOp, ch *presChange) {
	old, had := c.members[conn]
	if op.leave {
		if !had {
			return
		}
		delete(c.members, conn)
		ch.del = append(ch.del, conn)
		c.count(old.user, -1, ch)
		return
	}
	if had && old.user == op.user && bytes.Equal(old.info, op.info) {
		return
	}
	c.members[conn] = presMember{user: op.user, info: op.info}
	ch.set = append(ch.set, conn)
	if had {
		c.count(old.user, -1, ch)
	}
	c.count(op.user, 1, ch)
}

// count moves user's local member count by d, noting in ch.delta when the
// user appears (+1) or disappears (-1) locally.
func (c *presChan) count(user string, d int, ch *presChange) {
	if user == "" {
		return
	}
	n := c.users[user] + d
	switch {
	case n == 0:
		delete(c.users, user)
		ch.delta[user]--
	case n == 1 && d > 0:
		c.users[user] = n
		ch.delta[user]++
	default:
		c.users[user] = n
	}
}

// settle turns the chunk's user deltas into in and out. A user that left
// and came back within the chunk (another of its connections) is neither.
func (ch *presChange) settle() {
	for u, d := range ch.delta {
		switch {
		case d > 0:
			ch.in = append(ch.in, u)
		case d < 0:
			ch.out = append(ch.out, u)
		}
	}
}

// presLocal holds the channels with local members (and the emptied ones
// whose removal is not written yet), with a ring for the refresh cursor.
// Owned by the writer's run goroutine.
type presLocal struct {
	chans  map[string]*presChan
	ring   []*presChan
	cursor int
}

func newPresLocal() presLocal { return presLocal{chans: make(map[string]*presChan)} }

// get returns channel's record, creating it (not written) for a Join.
func (l *presLocal) get(instance, channel string, create bool) *presChan {
	c := l.chans[channel]
	if c == nil && create {
		c = &presChan{name: channel, keys: newPresKeys(instance, channel),
			members: make(map[string]presMember), users: make(map[string]int), pos: len(l.ring)}
		l.chans[channel] = c
		l.ring = append(l.ring, c)
	}
	return c
}

// drop forgets an emptied channel; the last of the ring takes its place.
func (l *presLocal) drop(c *presChan) {
	if l.chans[c.name] != c {
		return
	}
	delete(l.chans, c.name)
	last := len(l.ring) - 1
	l.ring[c.pos] = l.ring[last]
	l.ring[c.pos].pos = c.pos
	l.ring[last] = nil
	l.ring = l.ring[:last]
}

// step returns the channel at the refresh cursor and moves the cursor on,
// wrapping around; there must be a channel.
func (l *presLocal) step() *presChan {
	if l.cursor >= len(l.ring) {
		l.cursor = 0
	}
	l.cursor++
	return l.ring[l.cursor-1]
}
