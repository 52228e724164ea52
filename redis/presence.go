package redis

import (
	"context"

	"github.com/redis/rueidis"

	"github.com/wshub/wshub/hub"
	"github.com/wshub/wshub/hub/presence"
)

// A Presence is the hub's PresenceStore.
var _ hub.PresenceStore = (*Presence)(nil)

// Presence keeps the members of presence channels in Redis, per channel and
// per instance, fenced by the registry's heartbeats: a member of an
// instance whose heartbeat lapsed is not answered, even before its keys
// expire. Join and Leave never block (they queue; one goroutine writes in
// pipelined batches); Members and Stats read Redis on goroutines of their
// own, at most PresenceConfig.MaxQueries at once.
type Presence struct {
	b   *Broker       // set once
	w   *presWriter   // set once; the broker holds it too
	sem chan struct{} // one token per query waiting on Redis
}

// NewPresence starts the presence store of r's instance. It takes the
// Registry because the registry's heartbeat is what vouches for this
// instance's members. Broker.Close closes it (gracefully) when the caller
// did not.
func NewPresence(r *Registry, cfg PresenceConfig) (*Presence, error) {
	cfg.setDefaults()
	b := r.b
	w := newPresWriter(b.env(), cfg, r.w)
	if err := b.attach("presence store", w); err != nil {
		return nil, err
	}
	return &Presence{b: b, w: w, sem: make(chan struct{}, cfg.MaxQueries)}, nil
}

// Join makes m (a connection of this instance) a member of channel, or
// updates it. It queues and returns at once; m.Info is kept, not copied:
// the caller must not change it afterwards.
func (p *Presence) Join(channel string, m presence.Member) {
	if m.Conn != "" {
		p.w.enqueue(channel, m.Conn, presOp{user: m.User, info: m.Info})
	}
}

// Leave removes a connection of this instance from channel's members; it
// queues and returns at once.
func (p *Presence) Leave(channel string, conn string) {
	p.w.enqueue(channel, conn, presOp{leave: true})
}

// Sync waits until every Join and Leave queued before the call was written
// to Redis (or failed), or ctx ends.
func (p *Presence) Sync(ctx context.Context) error { return p.w.sync(ctx, errPresenceClosed) }

// Close writes what is queued, then deletes this instance's presence keys.
// Idempotent.
func (p *Presence) Close() error { return p.w.close() }

// halt stops the writer without touching Redis (what a crash looks like to
// the others). It reports whether this call did it.
func (p *Presence) halt() bool { return p.w.halt() }

// query runs fn on a goroutine of its own, or fails at once when
// MaxQueries are in flight.
func (p *Presence) query(fn func(ctx context.Context), fail func(error)) {
	select {
	case p.sem <- struct{}{}:
	default:
		fail(hub.ErrUnavailable)
		return
	}
	go func() {
		defer func() { <-p.sem }()
		ctx, cancel := context.WithTimeout(context.Background(), p.b.cfg.CommandTimeout)
		defer cancel()
		fn(ctx)
	}()
}

// Members lists channel's members on every live instance, in no order.
func (p *Presence) Members(channel string, done func([]presence.Member, error)) {
	p.query(func(ctx context.Context) {
		out, dead, err := p.members(ctx, channel)
		done(out, err)
		p.reap(ctx, channel, dead)
	}, func(err error) { done(nil, err) })
}

// Stats counts channel's members on every live instance: one HLEN per
// instance with members and one ZCOUNT, whatever their number (plus one
// rebuild of the counts when an instance is found dead).
func (p *Presence) Stats(channel string, done func(presence.Stats, error)) {
	p.query(func(ctx context.Context) {
		done(p.stats(ctx, channel))
	}, func(err error) { done(presence.Stats{}, err) })
}

// instances reads the set of instances with members on the channel of k,
// then sends in one pipeline, for each instance, EXISTS of its heartbeat
// (the registry's fencing) and per(its conns hash), then extra. It returns
// the instances and the replies, two per instance in order, extra last.
func (p *Presence) instances(ctx context.Context, k presKeys, per func(conns string) rueidis.Completed, extra ...rueidis.Completed) ([]string, []rueidis.RedisResult, error) {
	c := p.b.client
	p.b.stats.presenceCmds.Add(1)
	insts, err := c.Do(ctx, c.B().Smembers().Key(k.insts).Build()).AsStrSlice()
	if err != nil || len(insts) == 0 {
		return nil, nil, err
	}
	cmds := make(rueidis.Commands, 0, 2*len(insts)+len(extra))
	for _, in := range insts {
		cmds = append(cmds, c.B().Exists().Key(instKey(in)).Build(), per(presConnKey(in, k.tag)))
	}
	cmds = append(cmds, extra...)
	p.b.stats.presenceCmds.Add(uint64(len(cmds)))
	res := c.DoMulti(ctx, cmds...)
	for _, r := range res {
		if err := r.Error(); err != nil {
			return nil, nil, err
		}
	}
	return insts, res, nil
}

// members returns the live instances' members, and the dead instances.
func (p *Presence) members(ctx context.Context, channel string) (out []presence.Member, dead []string, err error) {
	c := p.b.client
	k := newPresKeys("", channel)
	insts, res, err := p.instances(ctx, k, func(conns string) rueidis.Completed {
		return c.B().Hgetall().Key(conns).Build()
	})
	if err != nil {
		return nil, nil, err
	}
	for i, in := range insts {
		if live, _ := res[2*i].AsInt64(); live == 0 {
			dead = append(dead, in)
			continue
		}
		m, err := res[2*i+1].AsStrMap()
		if err != nil {
			return nil, nil, err
		}
		for conn, v := range m {
			if mem, ok := parseMember(conn, v); ok {
				out = append(out, mem)
			}
		}
	}
	return out, dead, nil
}

// stats sums the live instances' HLENs and reads the distinct users from
// the counts, rebuilt first without the dead instances.
func (p *Presence) stats(ctx context.Context, channel string) (presence.Stats, error) {
	c := p.b.client
	k := newPresKeys("", channel)
	insts, res, err := p.instances(ctx, k, func(conns string) rueidis.Completed {
		return c.B().Hlen().Key(conns).Build()
	}, c.B().Zcount().Key(k.count).Min("1").Max("+inf").Build())
	if err != nil || len(insts) == 0 {
		return presence.Stats{}, err
	}
	var st presence.Stats
	var dead []string
	for i, in := range insts {
		if live, _ := res[2*i].AsInt64(); live == 0 {
			dead = append(dead, in)
			continue
		}
		n, _ := res[2*i+1].AsInt64()
		st.Conns += int(n)
	}
	users, _ := res[len(res)-1].AsInt64()
	if len(dead) > 0 {
		p.b.stats.presenceCmds.Add(1)
		if users, err = presFix(ctx, c, k, p.w.ttl(), false, dead); err != nil {
			return presence.Stats{}, err
		}
	}
	st.Users = int(users)
	return st, nil
}

// reap removes dead instances from channel's set and rebuilds its counts,
// so that the next queries read neither their keys nor their share.
func (p *Presence) reap(ctx context.Context, channel string, dead []string) {
	if len(dead) == 0 {
		return
	}
	p.b.stats.presenceCmds.Add(1)
	if _, err := presFix(ctx, p.b.client, newPresKeys("", channel), p.w.ttl(), false, dead); err != nil {
		p.b.log.Debug("presence: removing dead instances failed", "channel", channel, "err", err)
	}
}
