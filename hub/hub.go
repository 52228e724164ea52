// Package hub holds channels and subscriptions, speaks the client protocol
// (PROTOCOL.md), drives lazy broker subscriptions and fans publications out to
// the event loops. It never touches sockets: connections are reached through
// Conn and loops through Poster.
package hub

import (
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wshub/wshub/hub/access"
	"github.com/wshub/wshub/hub/history"
	"github.com/wshub/wshub/wsproto"
)

// Defaults applied to zero Config fields.
const (
	DefaultMaxPublish       = 64 << 10
	DefaultMaxSubscriptions = 1024
)

// Config configures a Hub.
type Config struct {
	// MaxPublish is the largest publish data in bytes; larger gets 413.
	// 0 means 65536.
	MaxPublish int
	// MaxSubscriptions is the most channels one connection may hold (pending
	// subscribes included); a subscribe beyond it gets 429 and the
	// connection stays open. It also bounds what each (un)subscribe of that
	// connection scans. 0 means 1024.
	MaxSubscriptions int
	// Metrics registers the hub's metrics when non-nil.
	Metrics prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// PublishTimeout bounds how long Publish (HTTP API) waits for the broker;
	// 0 means 5 seconds.
	PublishTimeout time.Duration
	// InstanceID names this gateway; connection ids are "<InstanceID>.<n>".
	// Empty means "local".
	InstanceID string
	// Registrar, when set, is told about every connection (the Redis
	// registry), and local connections can then be reached with SendDirect.
	Registrar Registrar
	// Directory, when set, serves POST /api/send, GET /api/connections/{id}
	// and GET /api/instances on the admin API; without it they answer 501.
	Directory Directory
	// Auth configures token authentication (zero: none, every connection
	// anonymous); Policy who may subscribe and publish where (nil:
	// access.Open, anyone anywhere); Limits each connection's command rates.
	Auth   AuthConfig
	Policy *access.Policy
	Limits RateLimits
	// Presence keeps the members of presence channels (namespaces with
	// presence). nil: a presence.MemoryStore when the broker is a
	// *MemoryBroker; with another broker presence queries then answer 503
	// and no one is tracked (a multi-instance store must be given).
	Presence PresenceStore
	// MaxPresenceAnswer bounds, in bytes, the answer to a client's presence
	// query; members past it (or past MaxPresenceMembers) are left out and
	// the answer says "truncated":true. 0 means 512 KiB.
	MaxPresenceAnswer int
}

// Hub routes commands from connections and publications from the broker.
// OnOpen, OnText and OnClose run on the connection's loop goroutine; Deliver
// and Publish on any goroutine.
type Hub struct {
	cfg    Config
	log    *slog.Logger
	broker Broker
	// historian is the broker's history, nil when it keeps none: no
	// channel is then a history channel.
	historian Historian
	table     *subTable
	loops     []*loopState
	index     *connIndex // local connections by id; nil without a Registrar

	idPrefix string // "<instance>."

	policy  *access.Policy
	limiter limiter
	users   userCounts  // connections per user, for Auth.MaxConnsPerUser
	grants  grantsTable // channels claims shared between connections

	verifiers verifiers // workers for slow token signatures (verifylater.go)

	presence  PresenceStore // nil: presence channels answer 503
	keepInfo  bool          // some namespace has presence: connections keep their info claims
	joinLeave lingerer      // joins and leaves received, leaves held back (joinleave.go)
	eventDone func(error)   // cached h.eventPublished

	errTooBig  *Error
	errTooMany *Error // subscription limit
	stats      hubStats
}

// New builds a hub over broker b and the event loops; loops[i] runs the
// connections whose Conn.Loop() is i. The caller starts b with the hub as
// its Sink.
func New(cfg Config, b Broker, loops []Poster) *Hub {
	if cfg.MaxPublish <= 0 {
		cfg.MaxPublish = DefaultMaxPublish
	}
	if cfg.MaxSubscriptions <= 0 {
		cfg.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.InstanceID == "" {
		cfg.InstanceID = "local"
	}
	if cfg.Policy == nil {
		cfg.Policy = access.Open()
	}
	if cfg.MaxPresenceAnswer <= 0 {
		cfg.MaxPresenceAnswer = DefaultMaxPresenceAnswer
	}
	if len(loops) > 1<<16 {
		panic("hub: more than 65536 loops") // connData.loop is a uint16
	}
	h := &Hub{cfg: cfg, log: cfg.Logger, broker: b, idPrefix: cfg.InstanceID + ".", policy: cfg.Policy, limiter: newLimiter(cfg.Limits)}
	h.stats.refused = make([]atomic.Uint64, len(refusalReasons))
	if cfg.Registrar != nil {
		h.index = newConnIndex()
		cfg.Registrar.Attach(h.index)
	}
	h.errTooBig = &Error{413, "data is larger than the publish limit of " + strconv.Itoa(cfg.MaxPublish) + " bytes"}
	h.errTooMany = &Error{429, "too many subscriptions on this connection (limit " + strconv.Itoa(cfg.MaxSubscriptions) + ")"}
	h.loops = make([]*loopState, len(loops))
	for i, p := range loops {
		h.loops[i] = newLoopState(h, i, p)
	}
	h.table = newSubTable(b, loops, h)
	h.table.maxSubs = cfg.MaxSubscriptions
	h.initPresence(b)
	if hb, ok := b.(Historian); ok {
		h.historian = hb
		h.table.namespace = h.streamOptions
	}
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(&collector{h: h}); err != nil {
			h.log.Warn("hub metrics not registered", "err", err)
		}
	}
	return h
}

// state returns c's hub state, creating it if OnOpen was skipped.
func (h *Hub) state(c Conn) *connData {
	if cs, _ := c.Data().(*connData); cs != nil {
		return cs
	}
	cs := &connData{conn: c, loop: uint16(c.Loop())}
	if h.limiter.on {
		cs.limits = h.limiter.newConnLimits()
	}
	c.SetData(cs)
	return cs
}

// OnOpen attaches the hub's state to a new connection and registers it with
// the Registrar.
func (h *Hub) OnOpen(c Conn) {
	cs := h.state(c)
	if cs.listed == 0 {
		h.register(c, cs)
	}
}

// OnClose drops every subscription of c. Replies still on their way to c are
// discarded: its closed flag is checked on its loop.
func (h *Hub) OnClose(c Conn) {
	cs, _ := c.Data().(*connData)
	if cs == nil {
		return
	}
	h.table.closeConn(cs)
	h.loops[cs.loop].dropReplay(cs)
	h.forgetInfo(cs)
	h.unregister(c, cs)
	if cs.flags&csCounted != 0 {
		h.users.release(cs.ident.User)
	}
	c.SetData(nil)
}

// OnText handles one client command (one complete text message).
func (h *Hub) OnText(c Conn, msg []byte) {
	cs := h.state(c)
	l := h.loops[cs.loop]
	var cmd command
	err := parseCommand(msg, &cmd)
	l.stats.commands[cmd.op].Add(1)
	if err != nil {
		l.replyError(c, cmd.hasID, cmd.id, err)
		return
	}
	if cs.limits != nil {
		if err, closeConn := h.limiter.admit(cs.limits, cmd.op == opPublish); err != nil {
			if closeConn {
				h.stats.rateClosed.Add(1)
				c.Close(wsproto.ClosePolicy, "rate limit")
				return
			}
			l.replyError(c, cmd.hasID, cmd.id, err)
			return
		}
	}
	switch cmd.op {
	case opPing:
		l.reply(c, appendPong(l.scratch[:0], cmd.hasID, cmd.id))
	case opSubscribe:
		h.subscribe(l, cs, &cmd)
	case opUnsubscribe:
		h.unsubscribe(l, cs, &cmd)
	case opPublish:
		h.publish(l, cs, &cmd)
	case opInfo:
		h.info(l, cs, &cmd)
	case opRefresh:
		h.refresh(l, cs, &cmd)
	case opPresence, opPresenceStats:
		h.queryPresence(l, cs, &cmd)
	}
}

func (h *Hub) subscribe(l *loopState, cs *connData, cmd *command) {
	if err := validChannel(cmd.channel); err != nil {
		l.replyError(cs.conn, cmd.hasID, cmd.id, err)
		return
	}
	if err := h.canSubscribe(cs, cmd.channel); err != nil {
		l.replyError(cs.conn, cmd.hasID, cmd.id, err)
		return
	}
	var flags uint8
	if cmd.hasID {
		flags |= mHasID
	}
	if cmd.hasSince {
		flags |= mSince
	}
	switch h.table.subscribe(cs, cmd.channel, cmd.id, flags) {
	case subOK:
		k := len(cs.subs) - 1 // subscribe appended it
		ls := cs.subs[k].ls
		m := &ls.members[cs.subs[k].idx]
		if ls.ch.hist.On() {
			h.subscribeStream(l, cs, ls, m, cmd.since, string(cmd.epoch))
		} else if cmd.hasID {
			l.reply(cs.conn, appendOK(l.scratch[:0], cmd.id, cmd.hasSince))
		}
		h.joinPresence(ls, m)
	case subPending:
		if ls := cs.subs[len(cs.subs)-1].ls; cmd.hasSince && ls.ch.hist.On() {
			h.table.holdSince(cs, ls, cmd.since, string(cmd.epoch))
		}
	case subAlready:
		if cmd.hasID {
			ls := cs.subs[cs.find(cmd.channel)].ls
			if ls.ch.hist.On() {
				l.reply(cs.conn, appendStreamOK(l.scratch[:0], cmd.id, history.Position{Offset: ls.seen, Epoch: ls.epoch}, cmd.hasSince, false, 0))
			} else {
				l.reply(cs.conn, appendOK(l.scratch[:0], cmd.id, cmd.hasSince))
			}
		}
	case subDupFull:
		l.replyError(cs.conn, cmd.hasID, cmd.id, errTooManyDups)
	case subFull:
		l.replyError(cs.conn, cmd.hasID, cmd.id, h.errTooMany)
	}
}

func (h *Hub) unsubscribe(l *loopState, cs *connData, cmd *command) {
	if err := validChannel(cmd.channel); err != nil {
		l.replyError(cs.conn, cmd.hasID, cmd.id, err)
		return
	}
	var ls *loopSubs
	if k := cs.find(cmd.channel); k >= 0 {
		ls = cs.subs[k].ls
	}
	m, dups, ok := h.table.unsubscribe(cs, cmd.channel)
	if !ok {
		l.replyError(cs.conn, cmd.hasID, cmd.id, errNotSubscribed)
		return
	}
	l.forget(cs, ls) // a replay of it still queued goes too
	if m.wait != 0 {
		// The subscribes it cancels still owe their one answer: they did
		// not fail, they were superseded.
		withRepeats(&m, dups, func(m *member) { h.confirmed(nil, m) })
	}
	if cmd.hasID {
		l.reply(cs.conn, appendOK(l.scratch[:0], cmd.id, false))
	}
}

// confirmed answers a subscribe once the broker confirmed it (member's
// loop); ls is nil for a subscribe an unsubscribe superseded. A history
// channel's subscribe goes on to read the stream first.
func (h *Hub) confirmed(ls *loopSubs, m *member) {
	if m.cs.closed() {
		return
	}
	l := h.loops[m.cs.loop]
	if ls != nil && ls.ch.hist.On() {
		since, epoch := h.table.takeSince(m.cs, ls, m)
		h.subscribeStream(l, m.cs, ls, m, since, epoch)
	} else if m.flags&mHasID != 0 {
		l.reply(m.conn, appendOK(l.scratch[:0], m.id, m.flags&mSince != 0))
	}
	if ls != nil && m.flags&mRepeat == 0 {
		h.joinPresence(ls, m)
	}
}

// failed answers a subscribe whose broker subscription failed (member's loop).
func (h *Hub) failed(m *member) {
	if !m.cs.closed() {
		h.loops[m.cs.loop].replyError(m.conn, m.flags&mHasID != 0, m.id, errUnavailable)
	}
}
