package redis

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// regWriter is the registry's only writer: one goroutine (run) pipelines the
// queued Adds and Removes, the heartbeats and the TTL refreshes. It knows
// nothing of the broker: the broker holds it (closing it first, and asking
// it to rewrite after a reconnect), the Registry above queues into it.
type regWriter struct {
	client  rueidis.Client // the broker's; set once
	cfg     RegistryConfig // set once
	id      string         // instance id; set once
	timeout time.Duration  // Config.CommandTimeout; set once
	log     *slog.Logger   // set once
	stats   *stats         // the broker's counters

	mu      sync.Mutex
	pending []regOp // guarded by mu: queued by enqueue, taken by flush
	closed  bool    // guarded by mu: set by halt

	rewrite atomic.Bool // stored by the broker after a reconnect, taken by heartbeat: rewrite all entries

	wake    chan struct{}      // cap 1: sent by enqueue, read by run
	syncReq chan chan struct{} // sent by sync, answered by run
	stop    chan struct{}      // closed by halt
	done    chan struct{}      // closed when run returns

	// Owned by the run goroutine (and by close after it stopped).
	local  map[string]*localConn
	order  []string // local ids, for the refresh cursor
	cursor int      // next index of order to refresh
	beats  int      // heartbeats sent
	resync bool     // Redis may have lost our entries: write them all again
	// unremoved holds removed entries (id -> user) whose DEL/SREM failed;
	// they are sent again with the next resync.
	unremoved map[string]string
}

// regOp is one queued Add or Remove.
type regOp struct {
	add      bool
	id, user string
	at       int64 // unix ms
}

// localConn is one of this instance's connections; owned by the run
// goroutine, like local.
type localConn struct {
	user string
	at   int64
	pos  int // index in order
}

func newRegWriter(client rueidis.Client, cfg RegistryConfig, id string, timeout time.Duration, log *slog.Logger, st *stats) *regWriter {
	return &regWriter{
		client:    client,
		cfg:       cfg,
		id:        id,
		timeout:   timeout,
		log:       log,
		stats:     st,
		wake:      make(chan struct{}, 1),
		syncReq:   make(chan chan struct{}),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		local:     make(map[string]*localConn),
		unremoved: make(map[string]string),
	}
}

func (r *regWriter) enqueue(op regOp) {
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

// sync waits until every operation queued before the call was written to
// Redis (or failed), or ctx ends.
func (r *regWriter) sync(ctx context.Context) error {
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

// close writes what is queued, then deletes this instance's heartbeat (which
// fences its entries at once) and its entries. Idempotent.
func (r *regWriter) close() error {
	if !r.halt() {
		return nil
	}
	r.flush()
	ctx, cancel := context.WithTimeout(context.Background(), 2*r.timeout)
	defer cancel()
	c := r.client
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
func (r *regWriter) halt() bool {
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

// run is the only writer: queued Adds/Removes, heartbeats and TTL refreshes
// are all pipelined from here.
func (r *regWriter) run() {
	defer close(r.done)
	r.heartbeat()
	hb := time.NewTicker(r.cfg.HeartbeatInterval)
	defer hb.Stop()
	rf := time.NewTicker(r.cfg.RefreshTick)
	defer rf.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-r.wake:
			r.flush()
		case ch := <-r.syncReq:
			r.flush()
			close(ch)
		case <-hb.C:
			r.heartbeat()
		case <-rf.C:
			r.refresh()
		}
	}
}

// exec sends cmds in pipelines of at most MaxPipeline and returns every result.
func (r *regWriter) exec(ctx context.Context, cmds rueidis.Commands) error {
	_, err := r.execResults(ctx, cmds)
	return err
}

func (r *regWriter) execResults(ctx context.Context, cmds rueidis.Commands) ([]rueidis.RedisResult, error) {
	var out []rueidis.RedisResult
	var first error
	for len(cmds) > 0 {
		n := min(len(cmds), r.cfg.MaxPipeline)
		r.stats.registryCmds.Add(uint64(n))
		res := r.client.DoMulti(ctx, cmds[:n]...)
		for _, x := range res {
			if err := x.Error(); err != nil && first == nil && !rueidis.IsRedisNil(err) {
				first = err
			}
		}
		out = append(out, res...)
		cmds = cmds[n:]
	}
	return out, first
}

func (r *regWriter) bg() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), r.timeout)
}

// addCmds writes one entry: the hash, its TTL, and the user's set.
func (r *regWriter) addCmds(cmds rueidis.Commands, id string, lc *localConn) rueidis.Commands {
	c := r.client
	ttl := r.cfg.TTL.Milliseconds()
	cmds = append(cmds,
		c.B().Hset().Key(connKey(id)).FieldValue().FieldValue("instance", r.id).FieldValue("user", lc.user).
			FieldValue("connected_at", strconv.FormatInt(lc.at, 10)).Build(),
		c.B().Pexpire().Key(connKey(id)).Milliseconds(ttl).Build())
	if lc.user != "" {
		cmds = append(cmds,
			c.B().Sadd().Key(userKey(lc.user)).Member(userMember(r.id, id)).Build(),
			c.B().Pexpire().Key(userKey(lc.user)).Milliseconds(ttl).Build())
	}
	return cmds
}

// flush writes the queued operations. An Add whose Remove is in the same
// batch never reaches Redis.
func (r *regWriter) flush() {
	r.mu.Lock()
	ops := r.pending
	r.pending = nil
	r.mu.Unlock()
	if len(ops) == 0 {
		return
	}
	addAt := make(map[string]int)
	skip := make([]bool, len(ops))
	for i, op := range ops {
		if op.add {
			addAt[op.id] = i
		} else if j, ok := addAt[op.id]; ok && r.local[op.id] == nil {
			skip[i], skip[j] = true, true
			delete(addAt, op.id)
		}
	}
	var cmds rueidis.Commands
	var removed []regOp // removes of this batch, kept for a retry if it fails
	for i, op := range ops {
		if skip[i] {
			continue
		}
		if old := r.local[op.id]; old != nil {
			cmds = r.removeCmds(cmds, op.id, old.user)
			removed = append(removed, regOp{id: op.id, user: old.user})
			r.removeLocal(op.id)
		}
		if op.add {
			// An earlier remove of this id that failed goes first, so
			// that the old user's set loses its member.
			if user, ok := r.unremoved[op.id]; ok {
				cmds = r.removeCmds(cmds, op.id, user)
				removed = append(removed, regOp{id: op.id, user: user})
				delete(r.unremoved, op.id)
			}
			lc := &localConn{user: op.user, at: op.at}
			r.addLocal(op.id, lc)
			cmds = r.addCmds(cmds, op.id, lc)
		}
	}
	ctx, cancel := r.bg()
	defer cancel()
	if err := r.exec(ctx, cmds); err != nil {
		r.log.Warn("registry write failed; will rewrite all entries", "err", err)
		r.resync = true
		// Resync only rewrites what is still local: the removes are
		// remembered, or their entries would linger until the TTL.
		for _, op := range removed {
			r.unremoved[op.id] = op.user
		}
	}
}

func (r *regWriter) removeCmds(cmds rueidis.Commands, id, user string) rueidis.Commands {
	c := r.client
	cmds = append(cmds, c.B().Del().Key(connKey(id)).Build())
	if user != "" {
		cmds = append(cmds, c.B().Srem().Key(userKey(user)).Member(userMember(r.id, id)).Build())
	}
	return cmds
}

// unremovedCmds are the removes still owed to Redis. They go before any add
// of the same id, and sending one twice is harmless.
func (r *regWriter) unremovedCmds(cmds rueidis.Commands) rueidis.Commands {
	for id, user := range r.unremoved {
		cmds = r.removeCmds(cmds, id, user)
	}
	return cmds
}

func (r *regWriter) addLocal(id string, lc *localConn) {
	lc.pos = len(r.order)
	r.order = append(r.order, id)
	r.local[id] = lc
}

func (r *regWriter) removeLocal(id string) {
	lc := r.local[id]
	last := len(r.order) - 1
	moved := r.order[last]
	r.order[lc.pos] = moved
	r.local[moved].pos = lc.pos
	r.order = r.order[:last]
	delete(r.local, id)
}

// heartbeat renews ws:instance:<id>. SET ... GET tells whether the key was
// still there: when it was not (Redis restarted empty, or we stalled past the
// TTL), every entry of this instance is written again.
func (r *regWriter) heartbeat() {
	c := r.client
	now := time.Now()
	val := `{"conns":` + strconv.Itoa(len(r.local)) + `,"ts":` + strconv.FormatInt(now.UnixMilli(), 10) + `}`
	ttl := r.cfg.HeartbeatTTL
	ctx, cancel := r.bg()
	defer cancel()
	res, err := r.execResults(ctx, rueidis.Commands{
		c.B().Set().Key(instKey(r.id)).Value(val).Get().PxMilliseconds(ttl.Milliseconds()).Build(),
		c.B().Zadd().Key(instancesKey).ScoreMember().ScoreMember(float64(now.Add(ttl).UnixMilli()), r.id).Build(),
	})
	if err != nil {
		r.resync = true
		return
	}
	if _, err := res[0].ToString(); rueidis.IsRedisNil(err) && r.beats > 0 {
		r.log.Warn("registry heartbeat had lapsed; rewriting entries", "conns", len(r.local))
		r.resync = true
	}
	if r.beats%64 == 0 {
		// Instances that crashed never leave the index themselves.
		stale := strconv.FormatInt(now.Add(-time.Hour).UnixMilli(), 10)
		_ = r.exec(ctx, rueidis.Commands{c.B().Zremrangebyscore().Key(instancesKey).Min("-inf").Max(stale).Build()})
	}
	r.beats++
	if r.rewrite.Swap(false) {
		r.resync = true
	}
	if r.resync {
		r.resync = false
		cmds := r.unremovedCmds(nil)
		for id, lc := range r.local {
			cmds = r.addCmds(cmds, id, lc)
		}
		if err := r.exec(ctx, cmds); err != nil {
			r.resync = true
		} else {
			clear(r.unremoved)
		}
	}
}

// refresh renews the TTL of the next slice of entries, sized so that every
// entry is renewed once per TTL/3. A missing key means Redis lost entries:
// rewrite them all at the next heartbeat.
func (r *regWriter) refresh() {
	n := len(r.order)
	if n == 0 {
		return
	}
	period := r.cfg.TTL / 3
	chunk := int((int64(n)*int64(r.cfg.RefreshTick) + int64(period) - 1) / int64(period))
	chunk = min(max(chunk, 1), n)
	c := r.client
	ttl := r.cfg.TTL.Milliseconds()
	cmds := make(rueidis.Commands, 0, 2*chunk)
	users := make(map[string]struct{})
	for i := 0; i < chunk; i++ {
		if r.cursor >= n {
			r.cursor = 0
		}
		id := r.order[r.cursor]
		r.cursor++
		cmds = append(cmds, c.B().Pexpire().Key(connKey(id)).Milliseconds(ttl).Build())
		if u := r.local[id].user; u != "" {
			if _, dup := users[u]; !dup {
				users[u] = struct{}{}
				cmds = append(cmds, c.B().Pexpire().Key(userKey(u)).Milliseconds(ttl).Build())
			}
		}
	}
	ctx, cancel := r.bg()
	defer cancel()
	res, err := r.execResults(ctx, cmds)
	if err != nil {
		r.resync = true
		return
	}
	for _, x := range res {
		if v, _ := x.AsInt64(); v == 0 {
			r.resync = true
			return
		}
	}
}
