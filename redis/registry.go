package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/wshub/wshub/hub"
)

// ErrNotFound: no live registry entry (never registered, removed, expired, or
// owned by an instance whose heartbeat lapsed). It matches hub.ErrNotFound.
var ErrNotFound = fmt.Errorf("redis: connection %w", hub.ErrNotFound)

// RegistryConfig tunes the connection registry; zero values take the defaults.
type RegistryConfig struct {
	// HeartbeatInterval is how often ws:instance:<id> is rewritten. Default 2s.
	HeartbeatInterval time.Duration
	// HeartbeatTTL is the heartbeat key's TTL: once it lapses every lookup
	// treats the instance's entries as gone. Default 3 x HeartbeatInterval.
	HeartbeatTTL time.Duration
	// TTL of ws:conn:<id> and ws:user:<user>. Entries are refreshed in
	// pipelined batches spread evenly so that each is renewed every TTL/3;
	// the TTL only bounds the garbage a crashed instance leaves behind, since
	// fencing hides its entries at once. Default 10m.
	TTL time.Duration
	// RefreshTick is how often a slice of the entries is refreshed. Default 1s.
	RefreshTick time.Duration
	// MaxPipeline is the largest number of commands sent in one round trip.
	// Default 4096.
	MaxPipeline int
}

func (c *RegistryConfig) setDefaults() {
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.HeartbeatTTL <= 0 {
		c.HeartbeatTTL = 3 * c.HeartbeatInterval
	}
	if c.TTL <= 0 {
		c.TTL = DefaultRegistryTTL
	}
	if c.RefreshTick <= 0 {
		c.RefreshTick = time.Second
	}
	if c.MaxPipeline <= 0 {
		c.MaxPipeline = 4096
	}
}

// ConnInfo is one registered connection (the hub's type, so that a Registry
// is a hub.Directory).
type ConnInfo = hub.ConnInfo

// InstanceInfo is one live gateway instance, from its heartbeat.
type InstanceInfo = hub.InstanceInfo

// A Registry is the hub's Presence (it records connections) and Directory
// (it finds them and routes addressed sends).
var (
	_ hub.Presence  = (*Registry)(nil)
	_ hub.Directory = (*Registry)(nil)
)

// Registry records this instance's connections in Redis and answers lookups
// across instances. Add and Remove never block (they queue; one goroutine
// writes in pipelined batches); lookups are synchronous Redis calls.
type Registry struct {
	b   *Broker
	cfg RegistryConfig
	id  string

	mu      sync.Mutex
	pending []regOp
	closed  bool

	rewrite atomic.Bool // set by the broker after a reconnect: rewrite all entries

	wake    chan struct{}
	syncReq chan chan struct{}
	stop    chan struct{}
	done    chan struct{}

	// Owned by the run goroutine (and by Close after it stopped).
	local  map[string]*localConn
	order  []string // local ids, for the refresh cursor
	cursor int
	beats  int
	resync bool // Redis may have lost our entries: write them all again
	// unremoved holds removed entries (id -> user) whose DEL/SREM failed;
	// they are sent again with the next resync.
	unremoved map[string]string
}

type regOp struct {
	add      bool
	id, user string
	at       int64 // unix ms
}

type localConn struct {
	user string
	at   int64
	pos  int // index in order
}

// NewRegistry starts the registry of b's instance. Broker.Close closes it
// (gracefully) when the caller did not.
func NewRegistry(b *Broker, cfg RegistryConfig) (*Registry, error) {
	cfg.setDefaults()
	r := &Registry{
		b:         b,
		cfg:       cfg,
		id:        b.cfg.InstanceID,
		wake:      make(chan struct{}, 1),
		syncReq:   make(chan chan struct{}),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		local:     make(map[string]*localConn),
		unremoved: make(map[string]string),
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("redis: broker closed")
	}
	if b.registry != nil {
		return nil, errors.New("redis: broker already has a registry")
	}
	b.registry = r
	go r.run()
	return r, nil
}

// Add registers a connection of this instance; user may be empty. It queues
// and returns at once.
func (r *Registry) Add(connID, user string) {
	r.enqueue(regOp{add: true, id: connID, user: user, at: time.Now().UnixMilli()})
}

// Remove unregisters a connection of this instance; it queues and returns at once.
func (r *Registry) Remove(connID string) {
	r.enqueue(regOp{id: connID})
}

func (r *Registry) enqueue(op regOp) {
	if op.id == "" {
		return
	}
	r.mu.Lock()
	if !r.closed {
		r.pending = append(r.pending, op)
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Sync waits until every Add and Remove queued before the call was written
// to Redis (or failed), or ctx ends.
func (r *Registry) Sync(ctx context.Context) error {
	ch := make(chan struct{})
	select {
	case r.syncReq <- ch:
	case <-r.done:
		return errors.New("redis: registry closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func connKey(id string) string            { return "ws:conn:" + id }
func userKey(u string) string             { return "ws:user:" + u }
func instKey(id string) string            { return "ws:instance:" + id }
func userMember(inst, conn string) string { return inst + "|" + conn }

const instancesKey = "ws:instances"

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

// Close writes what is queued, then deletes this instance's heartbeat (which
// fences its entries at once) and its entries. Idempotent.
func (r *Registry) Close() error {
	if !r.halt() {
		return nil
	}
	r.flush()
	ctx, cancel := context.WithTimeout(context.Background(), 2*r.b.cfg.CommandTimeout)
	defer cancel()
	c := r.b.client
	cmds := rueidis.Commands{
		c.B().Del().Key(instKey(r.id)).Build(),
		c.B().Zrem().Key(instancesKey).Member(r.id).Build(),
	}
	for id, lc := range r.local {
		cmds = r.removeCmds(cmds, id, lc.user)
	}
	cmds = r.unremovedCmds(cmds)
	return r.exec(ctx, cmds)
}

// halt stops the goroutine without touching Redis (what a crash looks like to
// the others). It reports whether this call did it.
func (r *Registry) halt() bool {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return false
	}
	r.closed = true
	r.mu.Unlock()
	close(r.stop)
	<-r.done
	return true
}
