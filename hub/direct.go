package hub

import (
	"context"
	"errors"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/cpu"

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
// registry). Calls come from the connection's loop and must not block.
type Registrar interface {
	Add(connID, user string)
	Remove(connID string)
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

// connIndex maps local connection ids to their state, for SendDirect. It is
// only filled when a Registrar is configured (otherwise no one can address a
// connection); sharded so that opens and closes on different loops rarely
// meet on one lock.
type connIndex struct {
	stripes [16]struct {
		mu  sync.Mutex
		set connSet // guarded by mu
		_   cpu.CacheLinePad
	}
}

func newConnIndex() *connIndex { return &connIndex{} }

func (x *connIndex) put(id uint64, cs *connData) {
	sh := &x.stripes[id%uint64(len(x.stripes))]
	sh.mu.Lock()
	sh.set.put(cs)
	sh.mu.Unlock()
}

func (x *connIndex) del(id uint64) {
	sh := &x.stripes[id%uint64(len(x.stripes))]
	sh.mu.Lock()
	sh.set.del(id)
	sh.mu.Unlock()
}

func (x *connIndex) get(id uint64) *connData {
	sh := &x.stripes[id%uint64(len(x.stripes))]
	sh.mu.Lock()
	cs := sh.set.get(id)
	sh.mu.Unlock()
	return cs
}

// connSet is a set of connections keyed by their own ids (conn.ID()):
// open addressing with linear probing, one pointer a slot, at most 3/4 full
// and halved when 1/8 full, so about 14 bytes a connection where a
// map[uint64]*connData spends about 30 (per-connection memory is the
// gateway's budget). Not safe for concurrent use.
type connSet struct {
	// nil for empty; 2^k-1 slots, so that with the 8-byte header Go gives
	// an object with pointers the array fills its size class exactly
	// (2^k slots would spill into the next one, 1/8 bigger)
	slots []*connData
	n     int
}

const minConnSlots = 15 // a connSet never shrinks below

// home is the first slot to look at for id: Fibonacci hashing (the ids of
// a stripe, 16 apart, spread) scaled to the table.
func (t *connSet) home(id uint64) int {
	hi, _ := bits.Mul64(id*0x9E3779B97F4A7C15, uint64(len(t.slots)))
	return int(hi)
}

// find returns the slot holding id, or -1.
func (t *connSet) find(id uint64) int {
	if t.n == 0 {
		return -1
	}
	for s := t.home(id); ; s = t.after(s) {
		switch cs := t.slots[s]; {
		case cs == nil:
			return -1
		case cs.conn.ID() == id:
			return s
		}
	}
}

func (t *connSet) after(s int) int {
	if s++; s == len(t.slots) {
		return 0
	}
	return s
}

func (t *connSet) get(id uint64) *connData {
	if s := t.find(id); s >= 0 {
		return t.slots[s]
	}
	return nil
}

// put adds cs, replacing the connection with the same id if there is one.
func (t *connSet) put(cs *connData) {
	if s := t.find(cs.conn.ID()); s >= 0 {
		t.slots[s] = cs
		return
	}
	t.n++
	if 4*t.n > 3*len(t.slots) {
		t.resize(max(minConnSlots, 2*len(t.slots)+1))
	}
	t.place(cs)
}

func (t *connSet) place(cs *connData) {
	s := t.home(cs.conn.ID())
	for t.slots[s] != nil {
		s = t.after(s)
	}
	t.slots[s] = cs
}

func (t *connSet) resize(size int) {
	old := t.slots
	t.slots = make([]*connData, size)
	for _, cs := range old {
		if cs != nil {
			t.place(cs)
		}
	}
}

// del removes id's connection if it is there. The entries after its slot
// that would no longer be found move back (deletion without tombstones).
func (t *connSet) del(id uint64) {
	s := t.find(id)
	if s < 0 {
		return
	}
	for j := t.after(s); t.slots[j] != nil; j = t.after(j) {
		h := t.home(t.slots[j].conn.ID())
		// The entry at j may fill s unless its home lies cyclically in (s, j].
		if (j > s && (h <= s || h > j)) || (j < s && h <= s && h > j) {
			t.slots[s] = t.slots[j]
			s = j
		}
	}
	t.slots[s] = nil
	t.n--
	if len(t.slots) > minConnSlots && 8*t.n < len(t.slots) {
		t.resize(len(t.slots) / 2)
	}
}

// ConnID is c's gateway-wide id: "<Config.InstanceID>.<c.ID()>".
func (h *Hub) ConnID(c Conn) string {
	return h.idPrefix + strconv.FormatUint(c.ID(), 10)
}

// register records a new connection with the Registrar and the index. The
// id is made for each call rather than kept: it is per-connection memory,
// and c.ID() gives it back.
func (h *Hub) register(c Conn, cs *connData) {
	if h.cfg.Registrar == nil {
		return
	}
	cs.listed = true
	h.index.put(c.ID(), cs)
	h.cfg.Registrar.Add(h.ConnID(c), cs.user())
}

// unregister undoes register.
func (h *Hub) unregister(c Conn, cs *connData) {
	if !cs.listed {
		return
	}
	cs.listed = false
	h.index.del(c.ID())
	h.cfg.Registrar.Remove(h.ConnID(c))
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
