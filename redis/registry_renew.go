package redis

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/wshub/wshub/hub"
)

// The registry writer's passes over every entry: the TTL refreshes, the
// rewrite after Redis lost entries, the deletion at close. They cover both
// records: the writer's own (Registry.Add's entries) and the hub's
// connections, walked through hub.LocalConns.
//
// A walk of the hub's record can meet a connection whose Opened is still
// queued (register tells the registry just before the record has it), and
// one whose Closed is: so a pass flushes the queue after reading a slice of
// the record, before it writes. After that flush, every connection read
// has been written (or opened and closed within one batch, then it is gone
// from the record), and a close after it queues a DEL that goes out after
// the pass.

// renew holds the passes' buffers, kept from one to the next.
type renew struct {
	walked []hub.LocalConn     // the slice of the hub's record being renewed
	refs   []int32             // refresh: what each command renews (see refFor)
	users  map[string]struct{} // refresh: the users whose set is renewed
}

// attach is Attach: the hub gives its record of connections, once.
func (r *regWriter) attach(l hub.LocalConns) { r.conns.Store(&l) }

// hubConns is the hub's record, or nil when no hub attached.
func (r *regWriter) hubConns() hub.LocalConns {
	if l := r.conns.Load(); l != nil {
		return *l
	}
	return nil
}

// rewriteAll has the next heartbeat write every entry again.
func (r *regWriter) rewriteAll() { r.rewrite.Store(true) }

// halt stops the goroutine without touching Redis (what a crash looks like to
// the others). It reports whether this call did it.
func (r *regWriter) halt() bool {
	r.mu.Lock()
	r.closed, r.final = true, true
	r.mu.Unlock()
	return r.writerCtl.halt()
}

// run is the only writer: queued operations, heartbeats and TTL refreshes
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

// close writes what is queued, then deletes this instance's heartbeat (which
// fences its entries at once) and its entries. Idempotent. A connection
// that leaves the hub's record while close walks it, and whose Closed comes
// after close's last flush, keeps its entry until the TTL (fenced).
func (r *regWriter) close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	if !r.writerCtl.halt() {
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
	err := p.finish()
	if l := r.hubConns(); l != nil {
		for i := range l.Parts() {
			walked := l.Part(r.walked[:0], i)
			p := r.pipe(ctx)
			for _, w := range walked {
				r.removeCmds(&p, r.hubID(w.N), w.User)
			}
			err = errors.Join(err, p.finish())
			r.keepWalked(walked)
		}
	}
	r.mu.Lock()
	r.final = true
	r.mu.Unlock()
	r.flush() // the removes that came meanwhile
	return err
}

// keepWalked keeps a pass's walked buffer for the next one.
func (r *regWriter) keepWalked(walked []hub.LocalConn) {
	clear(walked) // no user strings held until the next pass
	r.walked = keep(walked)
}

// heartbeat renews ws:instance:<id>. SET ... GET tells whether the key was
// still there: when it was not (Redis restarted empty, or we stalled past the
// TTL), every entry of this instance is written again.
func (r *regWriter) heartbeat() {
	c := r.client
	now := time.Now()
	conns := r.local.len()
	if l := r.hubConns(); l != nil {
		conns += l.Len()
	}
	val := `{"conns":` + strconv.Itoa(conns) + `,"ts":` + strconv.FormatInt(now.UnixMilli(), 10) + `}`
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
		r.log.Warn("registry heartbeat had lapsed; rewriting entries", "conns", conns)
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
		if r.rewriteEntries(ctx) != nil {
			r.resync = true
		}
	}
}

// rewriteEntries writes every entry again, and the removes still owed.
func (r *regWriter) rewriteEntries(ctx context.Context) error {
	p := r.pipe(ctx)
	r.unremovedCmds(&p)
	for i := range r.local.len() {
		r.addCmds(&p, r.local.at(i))
	}
	if err := p.finish(); err != nil {
		return err
	}
	clear(r.unremoved)
	l := r.hubConns()
	if l == nil {
		return nil
	}
	var err error
	for i := range l.Parts() {
		walked := l.Part(r.walked[:0], i)
		r.flush() // see the top of the file
		p := r.pipe(ctx)
		for _, w := range walked {
			if l.Has(w.N) {
				r.addCmds(&p, &regEntry{key: w.N, at: w.ConnectedAt, user: w.User})
			}
		}
		err = errors.Join(err, p.finish())
		r.keepWalked(walked)
	}
	return err
}

// refresh renews the TTL of the next slice of entries, sized so that every
// entry is renewed once per TTL/3 (the writer's own and the hub's each
// their own slice). A missing key of an entry still there means Redis lost
// entries: rewrite them all at the next heartbeat.
func (r *regWriter) refresh() {
	period := int64(r.cfg.TTL / 3)
	chunk := func(n int) int {
		if n == 0 {
			return 0
		}
		c := int((int64(n)*int64(r.cfg.RefreshTick) + period - 1) / period)
		return min(max(c, 1), n)
	}
	l := r.hubConns()
	walked := r.walked[:0]
	if l != nil {
		if walked, _ = l.Next(walked, chunk(l.Len())); len(walked) > 0 {
			r.flush() // see the top of the file
		}
	}
	own := chunk(r.local.len())
	if own == 0 && len(walked) == 0 {
		return
	}
	ctx, cancel := r.bg()
	defer cancel()
	p := r.pipe(ctx)
	p.ints = true
	r.zeros = r.zeros[:0]
	if r.users == nil {
		r.users = make(map[string]struct{})
	}
	refs := r.refs[:0]
	for range own {
		e := r.local.step()
		refs = r.pexpireCmds(&p, refs, e.key, e.user, -1, -1)
	}
	for i := range walked {
		w := &walked[i]
		refs = r.pexpireCmds(&p, refs, w.N, w.User, int32(i), -2-int32(i))
	}
	err := p.finish()
	if err != nil {
		r.resync = true
	}
	for _, k := range r.zeros {
		if !r.resync && r.lost(l, walked, refs[k]) {
			r.resync = true
		}
	}
	clear(r.users)
	r.refs = keep(refs)
	r.keepWalked(walked)
}

// pexpireCmds renews the hash of the entry of key (from connKeys: the
// hub's connection numbers are their keys), and its user's set unless this
// refresh already did; refs notes what each command renews: connRef for
// the hash, userRef for the set.
func (r *regWriter) pexpireCmds(p *pipe, refs []int32, key uint64, user string, connRef, userRef int32) []int32 {
	c := r.client
	ttl := r.cfg.TTL.Milliseconds()
	r.buf = r.keys.appendID(append(r.buf[:0], connPrefix...), key)
	p.add(c.B().Pexpire().Key(string(r.buf)).Milliseconds(ttl).Build())
	refs = append(refs, connRef)
	if _, dup := r.users[user]; user != "" && !dup {
		r.users[user] = struct{}{}
		p.add(c.B().Pexpire().Key(userKey(user)).Milliseconds(ttl).Build())
		refs = append(refs, userRef)
	}
	return refs
}

// lost reports whether a refresh command that found its key missing (ref:
// -1 for the writer's own entries, i for walked[i]'s hash, -2-i for its
// user's set) renews an entry that is still there. A hub connection may
// have closed since the walk read it.
func (r *regWriter) lost(l hub.LocalConns, walked []hub.LocalConn, ref int32) bool {
	switch {
	case ref == -1:
		return true
	case ref >= 0:
		return l.Has(walked[ref].N)
	}
	user := walked[-2-ref].User
	for _, w := range walked {
		if w.User == user && l.Has(w.N) {
			return true
		}
	}
	return false
}
