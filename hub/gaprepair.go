package hub

import (
	"sync"

	"github.com/wshub/wshub/hub/history"
)

// Gap repair: on a history channel the hub knows the last offset it handed
// to the loops. A publication that skips offsets (the broker's pub/sub lost
// some) waits, with those behind it, while the hub reads the missing ones
// from the stream; a subscription the broker restored after a loss
// (Resubscribed) reads what came meanwhile. Either way the loops get every
// offset once, in order, and a Redis pub/sub reconnect loses nothing that
// history still holds. What history no longer holds is counted as lost.

// maxHeld and maxHeldBytes bound the live publications one channel holds
// while its repair read is out; past either the repair is given up (and the
// gap counted).
const (
	maxHeld      = 4096
	maxHeldBytes = 4 << 20
)

// streamState is a history channel's position at this instance. Owned by
// whoever holds mu; Deliver calls for the channel are serialized by the
// broker, repair answers come from broker goroutines.
type streamState struct {
	mu sync.Mutex
	// at is the last publication handed to the loops; before the first, the
	// least position the subscribes' reads found (live), so that nothing a
	// member's ok did not cover is taken for a duplicate.
	at        history.Position
	live      bool      // at comes from a delivered publication
	repairing bool      // a repair read is out
	seq       uint32    // numbers repairs, so a late answer finds it was given up
	held      []heldPub // live publications behind the repair, in order
	heldBytes int
}

// heldPub is a live publication waiting for a repair (data copied).
type heldPub struct {
	pos  history.Position
	data []byte
}

// noteRead records the position a subscribe's read found.
func (st *streamState) noteRead(pos history.Position) {
	st.mu.Lock()
	if !st.live && !st.repairing && (st.at.Epoch != pos.Epoch || pos.Offset < st.at.Offset || st.at.Offset == 0) {
		st.at = pos
	}
	st.mu.Unlock()
}

// deliverStream hands a history publication to the loops in stream order;
// the caller holds ch.sh.mu (read).
func (h *Hub) deliverStream(ch *channel, pos history.Position, data []byte) {
	st := ch.stream
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.repairing {
		if len(st.held) < maxHeld && st.heldBytes+len(data) <= maxHeldBytes {
			st.hold(pos, data)
			return
		}
		h.stats.repairsAbandoned.Add(1)
		st.repairing = false // its answer will find nothing to do
		h.releaseHeld(ch, st)
	}
	switch {
	case st.at.Epoch != pos.Epoch || st.at.Offset == 0:
		// First publication, or the stream was reset: nothing to compare.
	case pos.Offset <= st.at.Offset:
		h.stats.streamDuplicates.Add(1)
		return
	case pos.Offset > st.at.Offset+1:
		st.hold(pos, data)
		h.repair(ch, st)
		return
	}
	st.at, st.live = pos, true
	h.fanout(ch, pos, data)
}

// hold keeps a live publication behind the repair; the caller holds st.mu.
func (st *streamState) hold(pos history.Position, data []byte) {
	st.held = append(st.held, heldPub{pos, append([]byte(nil), data...)})
	st.heldBytes += len(data)
}

// repair reads what follows st.at; the caller holds st.mu.
func (h *Hub) repair(ch *channel, st *streamState) {
	st.repairing = true
	st.seq++
	h.stats.repairs.Add(1)
	from, seq := st.at, st.seq
	h.historian.ReadHistory(ch.name, from.Offset, ch.recoveryMax, func(rd history.Read, err error) {
		// The entries are valid only during this call; the delivery takes
		// the locks, which the caller may hold if it answers at once.
		rd.Entries, _ = copyEntries(append([]history.Entry(nil), rd.Entries...), nil)
		go h.repaired(ch, seq, rd, err)
	})
}

// repaired delivers a repair read's entries, then the held publications.
func (h *Hub) repaired(ch *channel, seq uint32, rd history.Read, err error) {
	sh := ch.sh
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	st := ch.stream
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.repairing || st.seq != seq {
		return // given up meanwhile
	}
	if err == nil && rd.Pos.Epoch == st.at.Epoch {
		for _, e := range rd.Entries {
			if e.Offset > st.at.Offset {
				if e.Offset > st.at.Offset+1 {
					h.stats.lost.Add(e.Offset - st.at.Offset - 1) // trimmed already
				}
				st.at.Offset = e.Offset
				st.live = true
				h.fanout(ch, st.at, e.Data)
				h.stats.repaired.Add(1)
			}
		}
	}
	st.repairing = false
	h.releaseHeld(ch, st)
}

// releaseHeld delivers the held publications past st.at, counting the
// offsets missing before them as lost; the caller holds st.mu and ch.sh.mu.
func (h *Hub) releaseHeld(ch *channel, st *streamState) {
	held := st.held
	st.held, st.heldBytes = nil, 0
	for _, p := range held {
		if p.pos.Epoch == st.at.Epoch && p.pos.Offset <= st.at.Offset {
			continue
		}
		if p.pos.Epoch == st.at.Epoch && p.pos.Offset > st.at.Offset+1 {
			h.stats.lost.Add(p.pos.Offset - st.at.Offset - 1)
		}
		st.at, st.live = p.pos, true
		h.fanout(ch, p.pos, p.data)
	}
}

// Resubscribed is told that the broker restored channel's subscription
// after losing it: a history channel reads what it may have missed; for
// any other channel the possible loss is counted.
func (h *Hub) Resubscribed(channel string) {
	h.stats.resubscribed.Add(1)
	sh := h.table.stripeOfString(channel)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	ch := sh.m[channel]
	if ch == nil || ch.stream == nil {
		return
	}
	st := ch.stream
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.repairing && st.at.Offset != 0 {
		h.repair(ch, st)
	}
}
