package hub

import (
	"slices"
	"strconv"

	"github.com/wshub/wshub/hub/access"
	"github.com/wshub/wshub/hub/presence"
)

// Presence queries (PROTOCOL.md extensions, "Presence"):
//
//	{"op":"presence","channel":C,"id":N}
//	    -> {"op":"ok","id":N,"members":[{"conn","user","info"}...]} (+"truncated":true)
//	{"op":"presence_stats","channel":C,"id":N} -> {"op":"ok","id":N,"conns":n,"users":u}
//
// The store answers from any goroutine; the answer is encoded there and
// posted to the connection's loop, which drops it if the connection has
// closed meanwhile.

// Bounds of presence answers.
const (
	// MaxPresenceMembers is the most members one answer lists.
	MaxPresenceMembers = 10_000
	// DefaultMaxPresenceAnswer is Config.MaxPresenceAnswer by default.
	DefaultMaxPresenceAnswer = 512 << 10
	// maxPresenceQueries is the most queries one connection may have out;
	// one more gets 429. It bounds what a client can make the store copy.
	maxPresenceQueries = 4
)

var (
	errNoPresence      = &Error{404, "this channel has no presence: its namespace does not track members"}
	errPresenceSubs    = &Error{403, "only subscribers of this channel may query its presence"}
	errPresenceDown    = &Error{503, "presence store unavailable, retry later"}
	errPresenceTooMany = &Error{429, "too many presence queries waiting on this connection (limit " + strconv.Itoa(maxPresenceQueries) + ")"}
)

// presenceRules checks that channel has presence and that a client with
// identity id (subscribed or not) may query it; nil means go ahead.
func (h *Hub) presenceRules(id *access.Identity, channel string, subscribed bool) *Error {
	ns := h.policy.Lookup(channel)
	switch {
	case ns == nil:
		return forbidden[access.UnknownNamespace]
	case !ns.Presence.On:
		return errNoPresence
	}
	switch v := h.policy.CanQueryPresence(id, channel, subscribed); v {
	case access.Allowed:
	case access.NotSubscribed:
		return errPresenceSubs
	default:
		return forbidden[v]
	}
	if h.presence == nil {
		return errPresenceDown
	}
	return nil
}

// queryPresence handles presence and presence_stats on the client's loop.
func (h *Hub) queryPresence(l *loopState, cs *connData, cmd *command) {
	if err := validChannel(cmd.channel); err != nil {
		l.replyError(cs.conn, cmd.hasID, cmd.id, err)
		return
	}
	name := view(cmd.channel)
	if err := h.presenceRules(cs.identity(), name, cs.find(cmd.channel) >= 0); err != nil {
		l.replyError(cs.conn, cmd.hasID, cmd.id, err)
		return
	}
	if !cmd.hasID {
		return // success without an id is silent, as for every command
	}
	if cs.queries >= maxPresenceQueries {
		l.replyError(cs.conn, true, cmd.id, errPresenceTooMany)
		return
	}
	cs.queries++
	q := &presenceQuery{h: h, cs: cs, id: cmd.id}
	if cmd.op == opPresenceStats {
		h.presence.Stats(string(cmd.channel), q.stats)
	} else {
		h.presence.Members(string(cmd.channel), q.members)
	}
}

// presenceQuery is one query out at the store.
type presenceQuery struct {
	h   *Hub
	cs  *connData
	id  uint64
	out []byte // the answer, encoded where the store answered
	err *Error
}

func (q *presenceQuery) members(ms []presence.Member, err error) {
	if err != nil {
		q.err = errPresenceDown
	} else {
		b := appendID(append([]byte(nil), `{"op":"ok"`...), true, q.id)
		b, cut := appendMembers(append(b, `,"members":`...), ms, MaxPresenceMembers, q.h.cfg.MaxPresenceAnswer-len(`,"truncated":true}`))
		if cut {
			b = append(b, `,"truncated":true`...)
		}
		q.out = append(b, '}')
	}
	q.post()
}

func (q *presenceQuery) stats(st presence.Stats, err error) {
	if err != nil {
		q.err = errPresenceDown
	} else {
		b := appendID(append(make([]byte, 0, 64), `{"op":"ok"`...), true, q.id)
		q.out = append(appendStats(append(b, ','), st), '}')
	}
	q.post()
}

func (q *presenceQuery) post() { q.h.loops[q.cs.loop].poster.Post(q.answer) }

// answer runs on the connection's loop.
func (q *presenceQuery) answer() {
	cs := q.cs
	cs.queries--
	switch {
	case cs.closed():
	case q.err != nil:
		q.h.loops[cs.loop].replyError(cs.conn, true, q.id, q.err)
	default:
		sendJSON(cs.conn, q.out)
	}
}

// appendStats writes "conns":n,"users":u.
func appendStats(b []byte, st presence.Stats) []byte {
	b = strconv.AppendInt(append(b, `"conns":`...), int64(st.Conns), 10)
	return strconv.AppendInt(append(b, `,"users":`...), int64(st.Users), 10)
}

// membersSize estimates what appendMembers writes (escapes aside), at most
// maxBytes when it is positive: one allocation instead of a dozen growths
// for a large answer.
func membersSize(ms []presence.Member, maxBytes int) int {
	n := 2
	for i := range ms {
		n += len(`{"conn":"","user":"","info":},`) + len(ms[i].Conn) + len(ms[i].User) + len(ms[i].Info)
		if maxBytes > 0 && n >= maxBytes {
			return maxBytes
		}
	}
	return n
}

// appendMembers writes ms as a JSON array of {"conn","user"[,"info"]},
// at most maxN of them and, with maxBytes > 0, only as many as keep b
// within maxBytes; cut tells that some were left out.
func appendMembers(b []byte, ms []presence.Member, maxN, maxBytes int) (_ []byte, cut bool) {
	b = slices.Grow(b, membersSize(ms[:min(len(ms), maxN)], maxBytes))
	b = append(b, '[')
	for i := range ms {
		if i == maxN {
			return append(b, ']'), true
		}
		mark := len(b)
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(append(b, `{"conn":`...), ms[i].Conn)
		b = appendJSONString(append(b, `,"user":`...), ms[i].User)
		if len(ms[i].Info) > 0 {
			b = append(append(b, `,"info":`...), ms[i].Info...)
		}
		b = append(b, '}')
		if maxBytes > 0 && len(b)+1 > maxBytes {
			return append(b[:mark], ']'), true
		}
	}
	return append(b, ']'), false
}
