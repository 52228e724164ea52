package redis

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// presWriter is the presence store's only writer: one goroutine (run)
// pipelines the queued Joins and Leaves, renews each channel's TTLs once per
// TTL/3 and rewrites the channels Redis may have lost or missed. Like the
// registry's writer it knows nothing of the broker, which holds it (closing
// it first, asking it to rewrite after a reconnect); the Presence above
// queues into it.
//
// Nothing here blocks an event loop and nothing is dropped: the queue keeps
// the latest operation per channel and connection (a Leave after a Join in
// the same batch cancels it), so it holds at most one entry per member plus
// one per connection that left since the last batch, whatever the rate.
type presWriter struct {
	writerEnv
	cfg PresenceConfig // set once
	reg *regWriter     // whose heartbeat fences our members: beaten, lapses

	mu      sync.Mutex
	pending map[string]map[string]presOp // guarded by mu: channel -> conn -> latest op
	closed  bool                         // guarded by mu: set by halt

	rewrite atomic.Bool // stored by rewriteAll, taken by tick: rewrite every channel

	writerCtl

	// Owned by the run goroutine (and by close after it stopped).
	local  presLocal
	lapses uint64      // reg.lapses when last looked at
	dirty  []*presChan // channels marked dirty, for resync
	credit float64     // refresh: channels due but not renewed yet
	change presChange
	buf    []byte
}

// presChunk bounds the member changes of one transaction (and the fields of
// one HSET), so that a join storm on one channel is written in pieces.
const presChunk = 256

func newPresWriter(env writerEnv, cfg PresenceConfig, reg *regWriter) *presWriter {
	return &presWriter{
		writerEnv: env, cfg: cfg, reg: reg,
		pending:   make(map[string]map[string]presOp),
		writerCtl: newWriterCtl(),
		local:     newPresLocal(),
		change:    presChange{delta: make(map[string]int)},
	}
}

func (w *presWriter) enqueue(channel, conn string, op presOp) {
	w.mu.Lock()
	if !w.closed {
		m := w.pending[channel]
		if m == nil {
			m = make(map[string]presOp)
			w.pending[channel] = m
		}
		m[conn] = op
	}
	w.mu.Unlock()
	w.poke()
}

// rewriteAll has the next tick write every channel again.
func (w *presWriter) rewriteAll() { w.rewrite.Store(true) }

func (w *presWriter) halt() bool {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	return w.writerCtl.halt()
}

// run waits for the registry's first heartbeat: until it exists a reader
// would take our members for a dead instance's and delete them.
func (w *presWriter) run() {
	defer close(w.done)
	select {
	case <-w.reg.beaten:
	case <-w.stop:
		return
	}
	w.lapses = w.reg.lapses.Load()
	t := time.NewTicker(w.cfg.RefreshTick)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.wake:
			w.flush()
		case ch := <-w.syncReq:
			w.flush()
			close(ch)
		case <-t.C:
			w.tick()
		}
	}
}

// tick rewrites every channel when our heartbeat lapsed (a reader may have
// removed us as dead) or the broker reconnected (Redis may have restarted
// empty), then the dirty channels, then renews the next slice of TTLs.
func (w *presWriter) tick() {
	if l := w.reg.lapses.Load(); l != w.lapses || w.rewrite.Swap(false) {
		w.lapses = l
		for _, c := range w.local.ring {
			w.markDirty(c)
		}
	}
	w.resync()
	w.refresh()
}

func (w *presWriter) markDirty(c *presChan) {
	if !c.dirty {
		c.dirty = true
		w.dirty = append(w.dirty, c)
	}
}

func (w *presWriter) ttl() int64 { return w.cfg.TTL.Milliseconds() }

// flush writes the queued operations, per channel in transactions of at
// most presChunk member changes.
func (w *presWriter) flush() {
	w.mu.Lock()
	batch := w.pending
	if len(batch) == 0 {
		w.mu.Unlock()
		return
	}
	w.pending = make(map[string]map[string]presOp)
	w.mu.Unlock()
	ctx, cancel := w.bg()
	defer cancel()
	p := w.pipe(ctx, w.settleWrite)
	for channel, ops := range batch {
		c := w.local.get(w.id, channel, hasJoin(ops))
		if c == nil {
			continue // only Leaves of a channel we have no member on
		}
		ch := &w.change
		ch.reset()
		n := 0
		for conn, op := range ops {
			c.apply(conn, op, ch)
			if n++; n == presChunk {
				w.emit(&p, c, false)
				ch.reset()
				n = 0
			}
		}
		w.emit(&p, c, true)
	}
	_ = p.finish() // failures marked their channels dirty
}

func hasJoin(ops map[string]presOp) bool {
	for _, op := range ops {
		if !op.leave {
			return true
		}
	}
	return false
}

// emit writes the change in w.change; last: the batch's last chunk for c.
// A change of user counts is one transaction with the users set's change,
// so that presFixScript never counts a half-written one. A dirty channel
// is not changed: resync rewrites it whole.
func (w *presWriter) emit(p *presPipe, c *presChan, last bool) {
	ch := &w.change
	ch.settle()
	gone := last && len(c.members) == 0
	if gone && !c.written {
		w.local.drop(c) // never reached Redis (joined and left within the batch)
		return
	}
	if c.dirty || ch.empty() && !gone {
		return
	}
	k, cl, ttl := &c.keys, w.client, w.ttl()
	tx := !c.written || len(ch.in)+len(ch.out) > 0 || gone
	p.begin()
	if tx {
		p.add(cl.B().Multi().Build())
	}
	if !c.written {
		p.add(cl.B().Sadd().Key(k.insts).Member(w.id).Build(),
			cl.B().Pexpire().Key(k.insts).Milliseconds(ttl).Build())
	}
	if len(ch.set) > 0 {
		p.add(w.hset(c, ch.set))
		if !c.written {
			p.add(cl.B().Pexpire().Key(k.conns).Milliseconds(ttl).Build())
		}
	}
	if len(ch.del) > 0 {
		p.add(cl.B().Hdel().Key(k.conns).Field(ch.del...).Build())
	}
	if len(ch.in) > 0 {
		p.add(cl.B().Sadd().Key(k.users).Member(ch.in...).Build())
		for _, u := range ch.in {
			p.add(cl.B().Zincrby().Key(k.count).Increment(1).Member(u).Build())
		}
		p.add(cl.B().Pexpire().Key(k.users).Milliseconds(ttl).Build(),
			cl.B().Pexpire().Key(k.count).Milliseconds(ttl).Build())
	}
	if len(ch.out) > 0 {
		p.add(cl.B().Srem().Key(k.users).Member(ch.out...).Build())
		w.uncount(p, k, ch.out)
	}
	if gone {
		p.add(cl.B().Srem().Key(k.insts).Member(w.id).Build(),
			cl.B().Del().Key(k.conns, k.users).Build())
	}
	if tx {
		p.add(cl.B().Exec().Build())
	}
	c.written = true // a failure marks it dirty, which rewrites it whole
	p.end(c, gone)
}

// uncount takes users' counts down by one (ZREMRANGEBYSCORE drops the zeros;
// Stats counts scores of at least 1, so a zero in between is no user).
func (w *presWriter) uncount(p *presPipe, k *presKeys, users []string) {
	cl := w.client
	for _, u := range users {
		p.add(cl.B().Zincrby().Key(k.count).Increment(-1).Member(u).Build())
	}
	p.add(cl.B().Zremrangebyscore().Key(k.count).Min("-inf").Max("0").Build())
}

// hset writes the members of conns.
func (w *presWriter) hset(c *presChan, conns []string) rueidis.Completed {
	fv := w.client.B().Hset().Key(c.keys.conns).FieldValue()
	for _, conn := range conns {
		m := c.members[conn]
		w.buf = appendMember(w.buf[:0], m.user, m.info)
		fv = fv.FieldValue(conn, string(w.buf))
	}
	return fv.Build()
}

// settleWrite: a failed write leaves Redis unknown; a written removal
// forgets the channel.
func (w *presWriter) settleWrite(c *presChan, gone, ok, _ bool) {
	switch {
	case !ok:
		w.log.Warn("presence write failed; will rewrite the channel", "channel", c.name)
		w.markDirty(c)
	case gone && !c.dirty && len(c.members) == 0:
		w.local.drop(c)
	}
}

// resync rewrites each dirty channel whole: this instance's keys replaced in
// one transaction, then the counts rebuilt (presFixScript), since what they
// held of ours is unknown.
func (w *presWriter) resync() {
	if len(w.dirty) == 0 {
		return
	}
	list := w.dirty
	w.dirty = nil
	ctx, cancel := w.bg()
	defer cancel()
	var written []*presChan
	p := w.pipe(ctx, func(c *presChan, gone, ok, _ bool) {
		if ok {
			written = append(written, c)
		} else {
			w.markDirty(c)
		}
	})
	cl, ttl := w.client, w.ttl()
	for _, c := range list {
		if w.local.chans[c.name] != c {
			continue
		}
		c.dirty = false
		k := &c.keys
		p.begin()
		p.add(cl.B().Multi().Build(), cl.B().Del().Key(k.conns, k.users).Build())
		if len(c.members) == 0 {
			p.add(cl.B().Srem().Key(k.insts).Member(w.id).Build())
		} else {
			p.add(cl.B().Sadd().Key(k.insts).Member(w.id).Build(),
				cl.B().Pexpire().Key(k.insts).Milliseconds(ttl).Build())
			w.addAll(&p, c)
		}
		p.add(cl.B().Exec().Build())
		c.written = true
		p.end(c, len(c.members) == 0)
	}
	_ = p.finish()
	for _, c := range written {
		if _, err := presFix(ctx, cl, c.keys, ttl, true, nil); err != nil {
			w.markDirty(c)
			continue
		}
		if len(c.members) == 0 && !c.dirty {
			w.local.drop(c)
		}
	}
}

// addAll writes every member and user of c, presChunk per command.
func (w *presWriter) addAll(p *presPipe, c *presChan) {
	cl, k, ttl := w.client, &c.keys, w.ttl()
	conns := make([]string, 0, min(len(c.members), presChunk))
	for conn := range c.members {
		if conns = append(conns, conn); len(conns) == presChunk {
			p.add(w.hset(c, conns))
			conns = conns[:0]
		}
	}
	if len(conns) > 0 {
		p.add(w.hset(c, conns))
	}
	p.add(cl.B().Pexpire().Key(k.conns).Milliseconds(ttl).Build())
	if len(c.users) == 0 {
		return
	}
	users := make([]string, 0, min(len(c.users), presChunk))
	for u := range c.users {
		if users = append(users, u); len(users) == presChunk {
			p.add(cl.B().Sadd().Key(k.users).Member(users...).Build())
			users = users[:0]
		}
	}
	if len(users) > 0 {
		p.add(cl.B().Sadd().Key(k.users).Member(users...).Build())
	}
	p.add(cl.B().Pexpire().Key(k.users).Milliseconds(ttl).Build())
}

// refresh renews the TTLs of the next slice of channels, sized so that each
// is renewed once per TTL/3: two commands per channel (four with users),
// whatever its members. A key found missing (PEXPIRE 0) means Redis lost
// it, or a reader removed us as dead: the channel is rewritten.
func (w *presWriter) refresh() {
	n := len(w.local.ring)
	if n == 0 {
		w.credit = 0
		return
	}
	// credit accrues n channels per TTL/3: with few channels a tick renews
	// none, rather than one a tick (which would renew a lone channel every
	// RefreshTick).
	w.credit = min(w.credit+float64(n)*float64(w.cfg.RefreshTick)/float64(w.cfg.TTL/3), float64(n))
	chunk := min(int(w.credit), n)
	if chunk == 0 {
		return
	}
	w.credit -= float64(chunk)
	ctx, cancel := w.bg()
	defer cancel()
	p := w.pipe(ctx, func(c *presChan, _, ok, zero bool) {
		if !ok || zero {
			w.log.Warn("presence keys missing or unreachable; will rewrite the channel", "channel", c.name)
			w.markDirty(c)
		}
	})
	cl, ttl := w.client, w.ttl()
	for range chunk {
		c := w.local.step()
		if c.dirty || !c.written {
			continue
		}
		k := &c.keys
		p.begin()
		p.add(cl.B().Pexpire().Key(k.conns).Milliseconds(ttl).Build(),
			cl.B().Pexpire().Key(k.insts).Milliseconds(ttl).Build())
		if len(c.users) > 0 {
			p.add(cl.B().Pexpire().Key(k.users).Milliseconds(ttl).Build(),
				cl.B().Pexpire().Key(k.count).Milliseconds(ttl).Build())
		}
		p.end(c, false)
	}
	_ = p.finish()
}

// close writes what is queued, then deletes this instance's keys and takes
// its users out of the counts (one transaction per channel; a dirty
// channel's counts are rebuilt instead, since what they hold of ours is
// unknown). Idempotent.
func (w *presWriter) close() error {
	if !w.halt() {
		return nil
	}
	w.flush()
	ctx, cancel := context.WithTimeout(context.Background(), 2*w.timeout)
	defer cancel()
	var rebuild []*presChan
	p := w.pipe(ctx, func(*presChan, bool, bool, bool) {})
	cl := w.client
	for _, c := range w.local.ring {
		if !c.written {
			continue
		}
		k := &c.keys
		p.begin()
		p.add(cl.B().Multi().Build(), cl.B().Del().Key(k.conns, k.users).Build(),
			cl.B().Srem().Key(k.insts).Member(w.id).Build())
		if c.dirty {
			rebuild = append(rebuild, c)
		} else if len(c.users) > 0 {
			users := make([]string, 0, len(c.users))
			for u := range c.users {
				users = append(users, u)
			}
			w.uncount(&p, k, users)
		}
		p.add(cl.B().Exec().Build())
		p.end(c, true)
	}
	err := p.finish()
	for _, c := range rebuild {
		if _, e := presFix(ctx, cl, c.keys, w.ttl(), true, nil); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// presPipe is a pipeline of groups (a channel's commands, often one
// transaction): its commands go out about MaxPipeline at a time, a group
// never split, and settle hears each group's outcome: ok (no command or
// transaction step failed), zero (some integer reply was 0).
type presPipe struct {
	w      *presWriter
	ctx    context.Context
	cmds   rueidis.Commands
	groups []presGroup
	settle func(c *presChan, gone, ok, zero bool)
	err    error // the first failure
}

type presGroup struct {
	end  int // index after its last command
	c    *presChan
	gone bool
}

func (w *presWriter) pipe(ctx context.Context, settle func(c *presChan, gone, ok, zero bool)) presPipe {
	return presPipe{w: w, ctx: ctx, settle: settle}
}

// begin starts a group, sending what is queued when it is a full pipeline.
func (p *presPipe) begin() {
	if len(p.cmds) >= p.w.cfg.MaxPipeline {
		p.send()
	}
}

func (p *presPipe) add(cmds ...rueidis.Completed) { p.cmds = append(p.cmds, cmds...) }

func (p *presPipe) end(c *presChan, gone bool) {
	p.groups = append(p.groups, presGroup{end: len(p.cmds), c: c, gone: gone})
}

func (p *presPipe) send() {
	if len(p.cmds) == 0 {
		return
	}
	p.w.stats.presenceCmds.Add(uint64(len(p.cmds)))
	var res []rueidis.RedisResult
	if p.w.cluster {
		res = p.doBySlot()
	} else {
		res = p.w.client.DoMulti(p.ctx, p.cmds...)
	}
	start := 0
	for _, g := range p.groups {
		ok, zero := true, false
		for _, x := range res[start:g.end] {
			err := replyErr(x)
			if err != nil {
				ok = false
				if p.err == nil {
					p.err = err
				}
			} else if v, e := x.AsInt64(); e == nil && v == 0 {
				zero = true
			}
		}
		p.settle(g.c, g.gone, ok, zero)
		start = g.end
	}
	clear(p.cmds) // rueidis recycled them
	p.cmds, p.groups = p.cmds[:0], p.groups[:0]
}

// doBySlot sends the groups one DoMulti per cluster slot, all at once:
// rueidis refuses MULTI and EXEC (which have no slot) in a DoMulti whose
// other commands span slots. A channel's keys share one slot, so each
// transaction stays whole on its master.
func (p *presPipe) doBySlot() []rueidis.RedisResult {
	res := make([]rueidis.RedisResult, len(p.cmds))
	bySlot := make(map[uint16][]int) // slot -> its groups' indexes
	for i, g := range p.groups {
		sl := slotOf(g.c.keys.insts)
		bySlot[sl] = append(bySlot[sl], i)
	}
	var wg sync.WaitGroup
	for _, gs := range bySlot {
		wg.Go(func() {
			var cmds rueidis.Commands
			for _, i := range gs {
				cmds = append(cmds, p.cmds[p.start(i):p.groups[i].end]...)
			}
			out := p.w.client.DoMulti(p.ctx, cmds...)
			for _, i := range gs {
				n := copy(res[p.start(i):p.groups[i].end], out)
				out = out[n:]
			}
		})
	}
	wg.Wait()
	return res
}

// start is the index of group i's first command.
func (p *presPipe) start(i int) int {
	if i == 0 {
		return 0
	}
	return p.groups[i-1].end
}

// replyErr is a reply's failure, or that of a step of an EXEC's answer.
func replyErr(x rueidis.RedisResult) error {
	if err := x.Error(); err != nil {
		if rueidis.IsRedisNil(err) {
			return nil
		}
		return err
	}
	if steps, err := x.ToArray(); err == nil {
		for _, s := range steps {
			if err := s.Error(); err != nil && !rueidis.IsRedisNil(err) {
				return err
			}
		}
	}
	return nil
}

// finish sends what is left and returns the first failure.
func (p *presPipe) finish() error {
	p.send()
	return p.err
}
