package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/wshub/wshub/hub"
)

// ErrNotFound: no live registry entry (never registered, removed, expired, or
// owned by an instance whose heartbeat lapsed). It matches hub.ErrNotFound.
var ErrNotFound = fmt.Errorf("redis: connection %w", hub.ErrNotFound)

// ConnInfo is one registered connection (the hub's type, so that a Registry
// is a hub.Directory).
type ConnInfo = hub.ConnInfo

// InstanceInfo is one live gateway instance, from its heartbeat.
type InstanceInfo = hub.InstanceInfo

// A Registry is the hub's Registrar (it records connections in Redis) and
// Directory (it finds them and routes addressed sends).
var (
	_ hub.Registrar = (*Registry)(nil)
	_ hub.Directory = (*Registry)(nil)
)

// Registry records this instance's connections in Redis and answers lookups
// across instances. Opened, Closed, Add and Remove never block (they queue;
// one goroutine writes in pipelined batches); lookups and addressed sends
// are synchronous Redis calls.
type Registry struct {
	b *Broker    // set once
	w *regWriter // set once; the broker holds it too
}

// NewRegistry starts the registry of b's instance. Broker.Close closes it
// (gracefully) when the caller did not.
func NewRegistry(b *Broker, cfg RegistryConfig) (*Registry, error) {
	cfg.setDefaults()
	w := newRegWriter(b.env(), cfg)
	if err := b.attach("registry", w); err != nil {
		return nil, err
	}
	return &Registry{b: b, w: w}, nil
}

// Attach implements hub.Registrar: the registry walks the hub's record of
// its connections rather than keeping one of its own.
func (r *Registry) Attach(l hub.LocalConns) { r.w.attach(l) }

// Opened implements hub.Registrar: it queues and returns at once.
func (r *Registry) Opened(n uint64, user string, connectedAt int64) {
	r.w.enqueue(regOp{add: true, hub: true, n: n, user: user, at: connectedAt})
}

// Closed implements hub.Registrar: it queues and returns at once.
func (r *Registry) Closed(n uint64, user string) {
	r.w.enqueue(regOp{hub: true, n: n, user: user})
}

// Add registers a connection of this instance that is not the hub's (any
// id; the registry keeps a record of it); user may be empty. It queues and
// returns at once.
func (r *Registry) Add(connID, user string) {
	r.w.enqueue(regOp{add: true, id: connID, user: user, at: time.Now().UnixMilli()})
}

// Remove unregisters a connection given to Add; it queues and returns at once.
func (r *Registry) Remove(connID string) {
	r.w.enqueue(regOp{id: connID})
}

// Sync waits until every Add and Remove queued before the call was written
// to Redis (or failed), or ctx ends.
func (r *Registry) Sync(ctx context.Context) error { return r.w.sync(ctx, errRegistryClosed) }

// Close writes what is queued, then deletes this instance's heartbeat (which
// fences its entries at once) and its entries. Idempotent.
func (r *Registry) Close() error { return r.w.close() }

// halt stops the writer without touching Redis (what a crash looks like to
// the others). It reports whether this call did it.
func (r *Registry) halt() bool { return r.w.halt() }

func (r *Registry) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, r.b.cfg.CommandTimeout)
}

// alive reports, for each instance, whether its heartbeat key exists.
func (r *Registry) alive(ctx context.Context, insts []string) (map[string]bool, error) {
	c := r.b.client
	cmds := make(rueidis.Commands, len(insts))
	for i, in := range insts {
		cmds[i] = c.B().Exists().Key(instKey(in)).Build()
	}
	out := make(map[string]bool, len(insts))
	for i, res := range c.DoMulti(ctx, cmds...) {
		n, err := res.AsInt64()
		if err != nil {
			return nil, err
		}
		out[insts[i]] = n == 1
	}
	return out, nil
}

// Lookup finds a connection on any instance. Entries of an instance whose
// heartbeat lapsed are fenced: ErrNotFound, even before their own TTL ends.
func (r *Registry) Lookup(ctx context.Context, connID string) (ConnInfo, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	c := r.b.client
	m, err := c.Do(ctx, c.B().Hgetall().Key(connKey(connID)).Build()).AsStrMap()
	if err != nil {
		return ConnInfo{}, err
	}
	inst := m["instance"]
	if inst == "" {
		return ConnInfo{}, ErrNotFound
	}
	live, err := r.alive(ctx, []string{inst})
	if err != nil {
		return ConnInfo{}, err
	}
	if !live[inst] {
		return ConnInfo{}, ErrNotFound
	}
	at, _ := strconv.ParseInt(m["connected_at"], 10, 64)
	return ConnInfo{ID: connID, Instance: inst, User: m["user"], ConnectedAt: time.UnixMilli(at)}, nil
}

// UserConns lists the live connections of user on every instance (fenced
// like Lookup; ConnectedAt is not filled). Members left by dead instances are
// removed on the way.
func (r *Registry) UserConns(ctx context.Context, user string) ([]ConnInfo, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	c := r.b.client
	members, err := c.Do(ctx, c.B().Smembers().Key(userKey(user)).Build()).AsStrSlice()
	if err != nil || len(members) == 0 {
		return nil, err
	}
	var insts []string
	seen := make(map[string]bool)
	for _, m := range members {
		if in, _, ok := strings.Cut(m, "|"); ok && !seen[in] {
			seen[in] = true
			insts = append(insts, in)
		}
	}
	live, err := r.alive(ctx, insts)
	if err != nil {
		return nil, err
	}
	var out []ConnInfo
	var dead []string
	for _, m := range members {
		in, id, ok := strings.Cut(m, "|")
		if !ok || !live[in] {
			dead = append(dead, m)
			continue
		}
		out = append(out, ConnInfo{ID: id, Instance: in, User: user})
	}
	if len(dead) > 0 {
		r.b.stats.registryCmds.Add(1)
		_ = c.Do(ctx, c.B().Srem().Key(userKey(user)).Member(dead...).Build()).Error()
	}
	return out, nil
}

// Instances lists the instances whose heartbeat is live.
func (r *Registry) Instances(ctx context.Context) ([]InstanceInfo, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	c := r.b.client
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	ids, err := c.Do(ctx, c.B().Zrangebyscore().Key(instancesKey).Min(now).Max("+inf").Build()).AsStrSlice()
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	cmds := make(rueidis.Commands, len(ids))
	for i, id := range ids {
		cmds[i] = c.B().Get().Key(instKey(id)).Build()
	}
	var out []InstanceInfo
	for i, res := range c.DoMulti(ctx, cmds...) {
		v, err := res.ToString()
		if rueidis.IsRedisNil(err) {
			continue // lapsed since its last ZADD
		}
		if err != nil {
			return nil, err
		}
		var hb struct {
			Conns int   `json:"conns"`
			TS    int64 `json:"ts"`
		}
		if json.Unmarshal([]byte(v), &hb) != nil {
			continue
		}
		out = append(out, InstanceInfo{ID: ids[i], Conns: hb.Conns, Heartbeat: time.UnixMilli(hb.TS)})
	}
	return out, nil
}

// ---- addressed sends

// ErrNotDelivered: the owning instance is registered but nobody listens on
// its channel (it is restarting its subscription connection); retry later.
var ErrNotDelivered = errors.New("redis: owning instance not listening")

// SendToConn delivers data (a JSON value) to one connection on whichever
// instance holds it, through that instance's own channel; the owner's
// DirectHandler gets it. ErrNotFound when no live instance holds connID.
func (r *Registry) SendToConn(ctx context.Context, connID string, data []byte) error {
	info, err := r.Lookup(ctx, connID)
	if err != nil {
		return err
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	n, err := r.b.client.Do(ctx, r.publishCmd(info.Instance, []string{connID}, data)).AsInt64()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotDelivered
	}
	return nil
}

// SendToUser delivers data to every live connection of user: one publication
// per owning instance, naming its connections. It returns how many
// connections were addressed (ErrNotFound when none).
func (r *Registry) SendToUser(ctx context.Context, user string, data []byte) (int, error) {
	conns, err := r.UserConns(ctx, user)
	if err != nil {
		return 0, err
	}
	if len(conns) == 0 {
		return 0, ErrNotFound
	}
	byInst := make(map[string][]string)
	var order []string
	for _, c := range conns {
		if byInst[c.Instance] == nil {
			order = append(order, c.Instance)
		}
		byInst[c.Instance] = append(byInst[c.Instance], c.ID)
	}
	cmds := make(rueidis.Commands, len(order))
	for i, in := range order {
		cmds[i] = r.publishCmd(in, byInst[in], data)
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	sent := 0
	var first error
	for i, res := range r.b.client.DoMulti(ctx, cmds...) {
		n, err := res.AsInt64()
		switch {
		case err != nil:
			first = errors.Join(first, err)
		case n == 0:
			first = errors.Join(first, ErrNotDelivered)
		default:
			sent += len(byInst[order[i]])
		}
	}
	return sent, first
}

func (r *Registry) publishCmd(inst string, conns []string, data []byte) rueidis.Completed {
	c := r.b.client
	ch := instPrefix + inst
	msg := string(appendDirect(nil, conns, data))
	if r.b.cluster {
		return c.B().Spublish().Channel(ch).Message(msg).Build()
	}
	return c.B().Publish().Channel(ch).Message(msg).Build()
}
