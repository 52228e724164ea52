package hub

import (
	"encoding/json"

	"github.com/wshub/wshub/hub/access"
	"github.com/wshub/wshub/hub/presence"
)

// Presence membership (PROTOCOL.md extensions, "Presence"): a connection
// whose subscribe to a channel of a presence namespace is confirmed joins
// the channel's members in the PresenceStore, and leaves when it
// unsubscribes, closes or loses the subscription; a member carries the
// flag mJoined meanwhile, so that it leaves exactly once.
//
// A member's info is its token's info claim. Only when some namespace has
// presence is it kept, in its loop's infos map and only for connections
// whose token has one: connData does not grow, and a gateway without
// presence pays nothing for it.

// initPresence picks the store and wires the membership into the table.
func (h *Hub) initPresence(b Broker) {
	h.presence = h.cfg.Presence
	h.keepInfo = h.policy.HasPresence()
	if h.presence == nil && h.keepInfo {
		if _, ok := b.(*MemoryBroker); ok {
			h.presence = presence.NewMemoryStore()
		} else {
			h.log.Warn("presence namespaces without a presence store: nobody is tracked and presence queries answer 503")
		}
	}
	h.eventDone = h.eventPublished
	h.joinLeave.init(h)
	h.table.presenceOf = h.presenceOf
	h.table.left = h.leavePresence
	for _, l := range h.loops {
		if h.keepInfo {
			l.infos = make(map[*connData]json.RawMessage)
		}
	}
}

// presenceOf gives a new channel its namespace's presence options.
func (h *Hub) presenceOf(channel string) *access.Presence {
	if ns := h.policy.Lookup(channel); ns != nil && ns.Presence.On {
		return &ns.Presence
	}
	return nil
}

// setInfo records cs's info claim for its presence memberships (on its
// loop); nil forgets it.
func (h *Hub) setInfo(cs *connData, info json.RawMessage) {
	if !h.keepInfo {
		return
	}
	l := h.loops[cs.loop]
	if len(info) == 0 {
		delete(l.infos, cs)
		return
	}
	l.infos[cs] = info
}

// forgetInfo drops a closing connection's info claim.
func (h *Hub) forgetInfo(cs *connData) {
	if h.keepInfo {
		delete(h.loops[cs.loop].infos, cs)
	}
}

// joinPresence makes m, ls's member whose subscribe was just confirmed, a
// member of its presence channel (on m's loop); other channels and members
// that joined already are left alone.
func (h *Hub) joinPresence(ls *loopSubs, m *member) {
	p := ls.ch.presence
	if p == nil || h.presence == nil || m.flags&mJoined != 0 {
		return
	}
	m.flags |= mJoined
	cs := m.cs
	l := h.loops[cs.loop]
	conn := h.ConnID(cs.conn)
	h.presence.Join(ls.ch.name, presence.Member{Conn: conn, User: cs.user(), Info: l.infos[cs]})
	if p.JoinLeave {
		h.publishEvent(l, ls.ch.name, evJoin, conn, cs.user())
	}
}

// leavePresence is the table's word that cs's joined member of ls is gone
// (on its loop).
func (h *Hub) leavePresence(cs *connData, ls *loopSubs) {
	conn := h.ConnID(cs.conn)
	h.presence.Leave(ls.ch.name, conn)
	if ls.ch.presence.JoinLeave {
		h.publishEvent(h.loops[cs.loop], ls.ch.name, evLeave, conn, cs.user())
	}
}
