package redis

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/redis/rueidis"

	"github.com/wshub/wshub/hub"
)

// regWriter is the registry's only writer: one goroutine (run) pipelines the
// queued operations, the heartbeats and the TTL refreshes (the passes over
// every entry are in registry_renew.go). It knows nothing of the broker:
// the broker holds it (closing it first, and asking it to rewrite after a
// reconnect), the Registry above queues into it.
//
// It keeps no record of the hub's connections: the hub's own (hub.LocalConns)
// is walked instead, so that a connection costs one record, not two. Only
// the connections given to Registry.Add, which may have any id, are kept
// here (local, keys).
type regWriter struct {
	writerEnv
	cfg RegistryConfig // set once

	conns atomic.Pointer[hub.LocalConns] // the hub's connections; set once by Attach, nil before

	mu      sync.Mutex
	pending []regOp // guarded by mu: queued by enqueue, taken by flush
	spare   []regOp // guarded by mu: the last batch's emptied buffer, for the next
	closed  bool    // guarded by mu: no more adds (set by halt, and by close)
	final   bool    // guarded by mu: no more operations at all (halt, the end of close)

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
	local  regLocal // the entries of Registry.Add
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
	opened    []uint64         // flush: the hub's connections opened in the batch, sorted
	gone      []uint64         // flush: those of them closed in the batch too, sorted
	zeros     []int            // pipe with ints: the positions of the replies that were 0
	renew                      // refresh's and rewrite's buffers (registry_renew.go)
}

// regOp is one queued operation: an Add or Remove (id), or a hub
// connection's opening or closing (hub, n).
type regOp struct {
	add, hub bool
	n        uint64 // with hub: the hub's connection number
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
	if op.id == "" && !op.hub {
		return
	}
	r.mu.Lock()
	// After close began, removes still go out (close's last flush sends
	// them): their entries may have left the hub's record before close
	// walked it.
	if !r.final && !(r.closed && op.add) {
		r.pending = append(r.pending, op)
	}
	r.mu.Unlock()
	r.poke()
}

// pipe is a pipeline being filled: its commands go out MaxPipeline at a
// time, so that a burst (a connection storm, a rewrite of every entry) holds
// one pipeline's commands and replies at once, never all of them. One at a
// time, in r.cmds.
type pipe struct {
	r    *regWriter
	ctx  context.Context
	err  error // the first failure
	ints bool  // note integer replies of 0 in r.zeros (refresh: a key was missing)
	sent int   // commands sent so far
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
	for i, x := range p.r.client.DoMulti(p.ctx, cmds...) {
		if err := x.Error(); err != nil {
			if p.err == nil && !rueidis.IsRedisNil(err) {
				p.err = err
			}
		} else if p.ints {
			if v, _ := x.AsInt64(); v == 0 {
				p.r.zeros = append(p.r.zeros, p.sent+i)
			}
		}
	}
	p.sent += len(cmds)
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
	r.buf = r.keys.appendID(append(r.buf[:0], connPrefix...), e.key)
	n := len(r.buf)
	r.buf = strconv.AppendInt(r.buf, e.connectedAt(), 10)
	both := string(r.buf)
	key, at, id := both[:n], both[n:], both[len(connPrefix):n]
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
	r.sortHubOps(ops)
	for i := range ops {
		op := &ops[i]
		if op.hub {
			if !op.add && !r.openedToo(op.n) {
				id := r.hubID(op.n)
				r.removeCmds(&p, id, op.user)
				removed = append(removed, removedConn{id, op.user})
			}
			continue
		}
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
	for i := range ops {
		if op := &ops[i]; op.hub && op.add && !r.closedToo(op.n) {
			r.addCmds(&p, &regEntry{key: op.n, at: op.at, user: op.user})
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
	r.opened, r.gone = keep(r.opened), keep(r.gone)
	r.recycle(ops)
}

// sortHubOps finds the hub's connections that opened and closed within the
// batch: they never reach Redis (hub connection numbers are never reused).
func (r *regWriter) sortHubOps(ops []regOp) {
	opened, gone := r.opened[:0], r.gone[:0]
	for i := range ops {
		if ops[i].hub && ops[i].add {
			opened = append(opened, ops[i].n)
		}
	}
	slices.Sort(opened)
	r.opened = opened
	for i := range ops {
		if ops[i].hub && !ops[i].add && r.openedToo(ops[i].n) {
			gone = append(gone, ops[i].n)
		}
	}
	slices.Sort(gone)
	r.gone = gone
}

func (r *regWriter) openedToo(n uint64) bool {
	_, ok := slices.BinarySearch(r.opened, n)
	return ok
}

func (r *regWriter) closedToo(n uint64) bool {
	_, ok := slices.BinarySearch(r.gone, n)
	return ok
}

// hubID is the id of the hub's connection n.
func (r *regWriter) hubID(n uint64) string { return string(r.keys.appendID(r.buf[:0], n)) }

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
