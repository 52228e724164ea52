package redis

import (
	"context"
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
	writerEnv
	cfg RegistryConfig // set once

	mu      sync.Mutex
	pending []regOp // guarded by mu: queued by enqueue, taken by flush
	spare   []regOp // guarded by mu: the last batch's emptied buffer, for the next
	closed  bool    // guarded by mu: set by halt

	rewrite atomic.Bool // stored by rewriteAll, taken by heartbeat: rewrite all entries

	writerCtl

	// beaten is closed by the first heartbeat Redis accepted, lapses counts
	// the heartbeats that found the key gone or failed: the presence writer
	// waits for the first (a reader that saw its members before the
	// heartbeat would take it for dead) and rewrites its keys after the
	// others (a reader may have taken it for dead meanwhile).
	beaten chan struct{}
	lapses atomic.Uint64

	// Owned by the run goroutine (and by close after it stopped).
	local  regLocal
	keys   connKeys
	beats  int  // heartbeats sent
	resync bool // Redis may have lost our entries: write them all again
	// unremoved holds removed entries (id -> user) whose DEL/SREM failed;
	// they are sent again with the next resync.
	unremoved map[string]string
	buf       []byte           // scratch for key names
	cmds      rueidis.Commands // the pipeline being filled (pipe); at most MaxPipeline+1
	fresh     []uint64         // flush: keys added by the batch
	removed   []removedConn    // flush: removes of the batch, kept for a retry if it fails
}

// regOp is one queued Add or Remove.
type regOp struct {
	add      bool
	id, user string
	at       int64 // unix ms
}

// removedConn is a remove sent by a flush.
type removedConn struct{ id, user string }

// keepOps is the size up to which a batch's buffers are always kept for
// the next batch; a bigger one (a connection storm) is kept while batches
// use a quarter of it, and goes back to the garbage collector after.
const keepOps = 1024

func newRegWriter(env writerEnv, cfg RegistryConfig) *regWriter {
	return &regWriter{
		writerEnv: env,
		cfg:       cfg,
		writerCtl: newWriterCtl(),
		beaten:    make(chan struct{}),
		keys:      newConnKeys(env.id),
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
	r.poke()
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
	p := r.pipe(ctx)
	p.add(c.B().Del().Key(instKey(r.id)).Build(),
		c.B().Zrem().Key(instancesKey).Member(r.id).Build())
	for i := range r.local.len() {
		e := r.local.at(i)
		r.removeCmds(&p, string(r.keys.appendID(r.buf[:0], e.key)), e.user)
	}
	r.unremovedCmds(&p)
	return p.finish()
}

// rewriteAll has the next heartbeat write every entry again.
func (r *regWriter) rewriteAll() { r.rewrite.Store(true) }

// halt stops the goroutine without touching Redis (what a crash looks like to
// the others). It reports whether this call did it.
func (r *regWriter) halt() bool {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return r.writerCtl.halt()
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

// pipe is a pipeline being filled: its commands go out MaxPipeline at a
// time, so that a burst (a connection storm, a rewrite of every entry) holds
// one pipeline's commands and replies at once, never all of them. One at a
// time, in r.cmds.
type pipe struct {
	r    *regWriter
	ctx  context.Context
	err  error // the first failure
	ints bool  // note integer replies of 0 (refresh: a key was missing)
	zero bool  // with ints: some reply was 0
}

func (r *regWriter) pipe(ctx context.Context) pipe { return pipe{r: r, ctx: ctx} }

func (p *pipe) add(cmds ...rueidis.Completed) {
	p.r.cmds = append(p.r.cmds, cmds...)
	if len(p.r.cmds) >= p.r.cfg.MaxPipeline {
		p.send()
	}
}

func (p *pipe) send() {
	cmds := p.r.cmds
	if len(cmds) == 0 {
		return
	}
	p.r.stats.registryCmds.Add(uint64(len(cmds)))
	for _, x := range p.r.client.DoMulti(p.ctx, cmds...) {
		if err := x.Error(); err != nil {
			if p.err == nil && !rueidis.IsRedisNil(err) {
				p.err = err
			}
		} else if p.ints {
			if v, _ := x.AsInt64(); v == 0 {
				p.zero = true
			}
		}
	}
	clear(cmds) // rueidis recycled them
	p.r.cmds = cmds[:0]
}

// finish sends what is left and returns the first failure.
func (p *pipe) finish() error {
	p.send()
	return p.err
}

// execResults sends a few commands and returns every result.
func (r *regWriter) execResults(ctx context.Context, cmds ...rueidis.Completed) ([]rueidis.RedisResult, error) {
	r.stats.registryCmds.Add(uint64(len(cmds)))
	res := r.client.DoMulti(ctx, cmds...)
	for _, x := range res {
		if err := x.Error(); err != nil && !rueidis.IsRedisNil(err) {
			return res, err
		}
	}
	return res, nil
}

// addCmds writes one entry: the hash, its TTL, and the user's set.
func (r *regWriter) addCmds(p *pipe, e *regEntry) {
	// The key and connected_at share one allocation.
	r.buf = r.keys.appendID(append(r.buf[:0], "ws:conn:"...), e.key)
	n := len(r.buf)
	r.buf = strconv.AppendInt(r.buf, e.connectedAt(), 10)
	both := string(r.buf)
	key, at, id := both[:n], both[n:], both[len("ws:conn:"):n]
	c := r.client
	ttl := r.cfg.TTL.Milliseconds()
	p.add(c.B().Hset().Key(key).FieldValue().FieldValue("instance", r.id).FieldValue("user", e.user).
		FieldValue("connected_at", at).Build(),
		c.B().Pexpire().Key(key).Milliseconds(ttl).Build())
	if e.user != "" {
		uk := userKey(e.user)
		p.add(c.B().Sadd().Key(uk).Member(userMember(r.id, id)).Build(),
			c.B().Pexpire().Key(uk).Milliseconds(ttl).Build())
	}
}

// flush writes the queued operations. An Add whose Remove is in the same
// batch never reaches Redis. Within a batch the removes go out before the
// adds (each id's own commands keep their order).
func (r *regWriter) flush() {
	r.mu.Lock()
	ops := r.pending
	r.pending, r.spare = r.spare, nil
	r.mu.Unlock()
	if len(ops) == 0 {
		r.recycle(ops)
		return
	}
	ctx, cancel := r.bg()
	defer cancel()
	p := r.pipe(ctx)
	fresh, removed := r.fresh[:0], r.removed[:0]
	for i := range ops {
		op := &ops[i]
		if key, ok := r.keys.lookup(op.id); ok {
			if e, ok := r.local.remove(key); ok {
				r.keys.release(key)
				if e.written() { // else added by this batch: nothing to undo
					r.removeCmds(&p, op.id, e.user)
					removed = append(removed, removedConn{op.id, e.user})
				}
			}
		}
		if op.add {
			// An earlier remove of this id that failed goes first, so
			// that the old user's set loses its member.
			if user, ok := r.unremoved[op.id]; ok {
				r.removeCmds(&p, op.id, user)
				removed = append(removed, removedConn{op.id, user})
				delete(r.unremoved, op.id)
			}
			key := r.keys.assign(op.id)
			r.local.add(regEntry{key: key, at: ^op.at, user: op.user})
			fresh = append(fresh, key)
		}
	}
	for _, key := range fresh {
		if e := r.local.get(key); e != nil && !e.written() {
			e.at = ^e.at
			r.addCmds(&p, e)
		}
	}
	if err := p.finish(); err != nil {
		r.log.Warn("registry write failed; will rewrite all entries", "err", err)
		r.resync = true
		// Resync only rewrites what is still local: the removes are
		// remembered, or their entries would linger until the TTL.
		for _, rc := range removed {
			r.unremoved[rc.id] = rc.user
		}
	}
	clear(removed)
	r.fresh, r.removed = keep(fresh), keep(removed)
	r.recycle(ops)
}

// recycle keeps the emptied buffer of a batch for the next one (see keep).
func (r *regWriter) recycle(ops []regOp) {
	clear(ops)
	if ops = keep(ops); ops == nil {
		return
	}
	r.mu.Lock()
	if r.spare == nil {
		r.spare = ops
	}
	r.mu.Unlock()
}

// keep returns s emptied for reuse, or nil once a burst is over: when s
// grew past keepOps and this batch used less than a quarter of it.
// Regrowing a dropped buffer through every doubling during a storm would
// make more garbage than keeping it.
func keep[T any](s []T) []T {
	if cap(s) > keepOps && 4*len(s) < cap(s) {
		return nil
	}
	return s[:0]
}

func (r *regWriter) removeCmds(p *pipe, id, user string) {
	c := r.client
	p.add(c.B().Del().Key(connKey(id)).Build())
	if user != "" {
		p.add(c.B().Srem().Key(userKey(user)).Member(userMember(r.id, id)).Build())
	}
}

// unremovedCmds are the removes still owed to Redis. They go before any add
// of the same id, and sending one twice is harmless.
func (r *regWriter) unremovedCmds(p *pipe) {
	for id, user := range r.unremoved {
		r.removeCmds(p, id, user)
	}
}

// heartbeat renews ws:instance:<id>. SET ... GET tells whether the key was
// still there: when it was not (Redis restarted empty, or we stalled past the
// TTL), every entry of this instance is written again.
func (r *regWriter) heartbeat() {
	c := r.client
	now := time.Now()
	val := `{"conns":` + strconv.Itoa(r.local.len()) + `,"ts":` + strconv.FormatInt(now.UnixMilli(), 10) + `}`
	ttl := r.cfg.HeartbeatTTL
	ctx, cancel := r.bg()
	defer cancel()
	res, err := r.execResults(ctx,
		c.B().Set().Key(instKey(r.id)).Value(val).Get().PxMilliseconds(ttl.Milliseconds()).Build(),
		c.B().Zadd().Key(instancesKey).ScoreMember().ScoreMember(float64(now.Add(ttl).UnixMilli()), r.id).Build())
	if err != nil {
		r.resync = true
		r.lapses.Add(1)
		return
	}
	if _, err := res[0].ToString(); rueidis.IsRedisNil(err) && r.beats > 0 {
		r.log.Warn("registry heartbeat had lapsed; rewriting entries", "conns", r.local.len())
		r.resync = true
		r.lapses.Add(1)
	}
	if r.beats == 0 {
		close(r.beaten)
	}
	if r.beats%64 == 0 {
		// Instances that crashed never leave the index themselves.
		stale := strconv.FormatInt(now.Add(-time.Hour).UnixMilli(), 10)
		_, _ = r.execResults(ctx, c.B().Zremrangebyscore().Key(instancesKey).Min("-inf").Max(stale).Build())
	}
	r.beats++
	if r.rewrite.Swap(false) {
		r.resync = true
	}
	if r.resync {
		r.resync = false
		p := r.pipe(ctx)
		r.unremovedCmds(&p)
		for i := range r.local.len() {
			r.addCmds(&p, r.local.at(i))
		}
		if p.finish() != nil {
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
	n := r.local.len()
	if n == 0 {
		return
	}
	period := r.cfg.TTL / 3
	chunk := int((int64(n)*int64(r.cfg.RefreshTick) + int64(period) - 1) / int64(period))
	chunk = min(max(chunk, 1), n)
	c := r.client
	ttl := r.cfg.TTL.Milliseconds()
	ctx, cancel := r.bg()
	defer cancel()
	p := r.pipe(ctx)
	p.ints = true
	users := make(map[string]struct{})
	for range chunk {
		e := r.local.step()
		r.buf = r.keys.appendID(append(r.buf[:0], "ws:conn:"...), e.key)
		p.add(c.B().Pexpire().Key(string(r.buf)).Milliseconds(ttl).Build())
		if u := e.user; u != "" {
			if _, dup := users[u]; !dup {
				users[u] = struct{}{}
				p.add(c.B().Pexpire().Key(userKey(u)).Milliseconds(ttl).Build())
			}
		}
	}
	if err := p.finish(); err != nil || p.zero {
		r.resync = true
	}
}
