package hub

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/ws"

	"github.com/wshub/wshub/wsproto"
)

// Addressed sends and the connection directory (extensions to PROTOCOL.md,
// documented in README.md):
//   - every connection has a gateway-wide id "<instance>.<n>" (ConnID), which
//     a client learns with {"op":"info","id":N};
//   - a backend sends to one connection or to every connection of a user with
//     POST /api/send; the Directory (the Redis registry) finds the owning
//     instance, whose broker hands the data to SendDirect, which queues
//     {"op":"direct","data":...} on that one connection's loop.

// Registrar is told about every connection opening and closing (the Redis
// registry). Calls come from the connection's loop and must not block. It
// need keep no record of each connection: the hub's own (LocalConns, given
// to Attach) holds what it would.
type Registrar interface {
	// Attach is called once, by New, before any Opened.
	Attach(LocalConns)
	// Opened: connection n (ConnID "<instance>.<n>") of user ("" when
	// anonymous) opened at connectedAt (unix ms). It is in LocalConns
	// from just after the call until just before Closed.
	Opened(n uint64, user string, connectedAt int64)
	Closed(n uint64, user string)
}

// ConnInfo is one connection as the directory knows it.
type ConnInfo struct {
	ID          string    `json:"id"`
	Instance    string    `json:"instance"`
	User        string    `json:"user,omitempty"`
	ConnectedAt time.Time `json:"connected_at"`
}

// InstanceInfo is one live gateway instance.
type InstanceInfo struct {
	ID        string    `json:"id"`
	Conns     int       `json:"conns"`
	Heartbeat time.Time `json:"heartbeat"`
}

// Directory finds connections across instances and routes addressed sends to
// their owners. Errors matching ErrNotFound become 404; any other error means
// the backend could not answer (503).
type Directory interface {
	SendToConn(ctx context.Context, connID string, data []byte) error
	SendToUser(ctx context.Context, user string, data []byte) (int, error)
	Lookup(ctx context.Context, connID string) (ConnInfo, error)
	Instances(ctx context.Context) ([]InstanceInfo, error)
}

// ErrNotFound is reported by a Directory for a connection or user that no
// live instance holds.
var ErrNotFound = errors.New("not found")

// ConnID is c's gateway-wide id: "<Config.InstanceID>.<c.ID()>".
func (h *Hub) ConnID(c Conn) string {
	return h.idPrefix + strconv.FormatUint(c.ID(), 10)
}

// register records a new connection with the Registrar and the index. The
// id is not kept: it is per-connection memory, and c.ID() gives it back.
// The Registrar hears of it before the index has it, so that its walk never
// meets a connection it was not told about.
func (h *Hub) register(c Conn, cs *connData) {
	if h.cfg.Registrar == nil {
		return
	}
	cs.listed = h.index.stamp()
	h.cfg.Registrar.Opened(c.ID(), cs.user(), h.index.connectedAt(cs))
	h.index.put(c.ID(), cs)
}

// unregister undoes register. listed is cleared after the index let go of
// cs: the Registrar's walk reads it under the index's lock.
func (h *Hub) unregister(c Conn, cs *connData) {
	if cs.listed == 0 {
		return
	}
	h.index.del(c.ID())
	h.cfg.Registrar.Closed(c.ID(), cs.user())
	cs.listed = 0
}

// direct frame layout: {"op":"direct","data":<data>}
const directHead = `{"op":"direct","data":`

// SendDirect queues data (a JSON value, copied) for the local connection
// connID as {"op":"direct","data":...}. It is safe from any goroutine and
// never blocks; it reports whether connID named an open local connection
// (one that closes meanwhile silently drops it). Only connections opened
// while a Registrar is configured can be addressed.
func (h *Hub) SendDirect(connID string, data []byte) bool {
	var cs *connData
	if rest, ok := strings.CutPrefix(connID, h.idPrefix); ok && h.index != nil {
		if id, err := strconv.ParseUint(rest, 10, 64); err == nil {
			cs = h.index.get(id)
		}
	}
	if cs == nil {
		h.stats.directMissed.Add(1)
		return false
	}
	f, p := wsproto.BuildFrame(ws.OpText, len(directHead)+len(data)+1)
	n := copy(p, directHead)
	n += copy(p[n:], data)
	p[n] = '}'
	h.loops[cs.loop].pushDirect(cs, f)
	return true
}

// info answers {"op":"info","id":N} with the connection's and instance's ids.
func (h *Hub) info(l *loopState, cs *connData, cmd *command) {
	if !cmd.hasID {
		return // success without an id is silent, as for every command
	}
	b := append(l.scratch[:0], `{"op":"ok"`...)
	b = appendID(b, true, cmd.id)
	b = append(b, `,"conn":`...)
	b = appendJSONString(b, h.ConnID(cs.conn))
	b = append(b, `,"instance":`...)
	b = appendJSONString(b, h.cfg.InstanceID)
	l.reply(cs.conn, append(b, '}'))
}
