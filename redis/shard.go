package redis

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/wshub/wshub/hub"
)

var errStopped = errors.New("redis: shard stopped")

// chanState is one channel in the broker's table. Guarded by base.mu: the
// broker creates, routes and deletes it; the shard it is on answers its
// waiters (and deletes it once answered and unwanted).
type chanState struct {
	shard    *shard // connection it belongs on; nil while a cluster route is unknown
	wanted   bool   // the hub (or the broker itself, for internal channels) wants it
	internal bool   // instance or probe channel: never unsubscribed by the hub
	// lost: Redis had confirmed the channel, then it lost the subscription
	// (the connection ended, Redis dropped it, its slot moved): the next
	// confirmation is a resubscription the sink is told of.
	lost    bool
	waiters []func(error) // Subscribe callbacks waiting for Redis' answer
}

func (st *chanState) needed() bool { return st.wanted || len(st.waiters) > 0 }

// takeWaiters moves st's waiters to fire.
func (st *chanState) takeWaiters(fire []func(error)) []func(error) {
	fire = append(fire, st.waiters...)
	st.waiters = nil
	return fire
}

// shardOwner is the broker as its shards see it; the methods ending in
// Locked are called with base.mu held.
type shardOwner interface {
	// deliver hands on a message read on a live connection.
	deliver(m rueidis.PubSubMessage)
	// resubscribed: Redis confirmed ch again after a loss (see
	// chanState.lost). Called on the connection's reader, like deliver.
	resubscribed(ch string)
	// updateReadyLocked re-evaluates readiness after a shard went up or down.
	updateReadyLocked()
	// restored: a connection is back after a loss, and Redis may have
	// restarted empty.
	restored()
	// lost: a connection ended or could not be opened.
	lost()
	// droppedLocked: Redis unsubscribed s from ch without being asked.
	droppedLocked(s *shard, ch string)
	// refusedLocked: Redis refused s's SUBSCRIBE of chs, answering MOVED to
	// movedTo when not "". It returns failed plus the waiters to fail.
	refusedLocked(s *shard, chs []string, movedTo string, failed []func(error)) []func(error)
}

// base is the part of a Broker (which embeds it) that its shards share. Set
// once by New, except where noted.
type base struct {
	cfg     Config
	log     *slog.Logger
	stats   stats                // atomics
	cluster bool                 // sharded pub/sub, one shard per master
	nodeOpt rueidis.ClientOption // template for per-master clients (cluster)
	owner   shardOwner           // the Broker itself
	wg      sync.WaitGroup       // every goroutine of the broker and its shards; waited for by Close

	// mu guards chans, the Broker's fields marked so and the shards' marked so.
	mu    sync.Mutex
	chans map[string]*chanState // channels wanted or still settling
}

// shard owns one subscription connection (the only one when standalone, one
// per master on a cluster) and the goroutine that drives it: connect,
// resubscribe, batch SUBSCRIBE/UNSUBSCRIBE, probe, and reconnect with backoff.
// What to send is its plan's decision; where a channel goes is the broker's.
type shard struct {
	b    *base  // the broker's shared part; set once
	addr string // master address; "" when standalone; set once

	wake     chan struct{} // cap 1: marked channels to reconcile; sent by markDirtyLocked, read by run
	stop     chan struct{} // closed by halt; read by run
	stopOnce sync.Once     // owned by halt

	// Guarded by b.mu.
	node      rueidis.Client // client to dedicate the connection from; set by nodeClient, cleared by closeNode
	ownNode   bool           // node was created for this shard (cluster); set by nodeClient
	sess      *session       // current connection; nil while down; set by runSession, cleared by endSession
	up        bool           // connected and initial resubscription confirmed; set by runSession
	plan      *subPlan       // what to (un)subscribe on sess; decides, the shard goroutine sends
	probeChan string         // set by the broker (setProbeLocked, dropProbeLocked)

	// Owned by the shard goroutine.
	probe    prober // its atomics are stored by other goroutines too (see prober)
	sessions int    // connections established so far
}

// session is one connection's identity; hooks of an older connection are ignored.
type session struct {
	dc rueidis.DedicatedClient // set once
	// live is set while this is the shard's current connection. A replaced
	// connection closes in the background and may still read messages that
	// the new one delivers too: its reader drops them once live is false.
	live atomic.Bool
}

// onMessage hands on messages of the current connection only.
func (sess *session) onMessage(o shardOwner, m rueidis.PubSubMessage) {
	if sess.live.Load() {
		o.deliver(m)
	}
}

// newShard starts the shard of master addr (node: the client to dedicate
// connections from; nil to make one for addr).
func newShard(b *base, addr string, node rueidis.Client) *shard {
	s := &shard{
		b:    b,
		addr: addr,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		node: node,
		plan: newSubPlan(b.cfg.SubscribeBatch, b.cluster),
	}
	b.wg.Add(1)
	go s.run()
	return s
}

func (s *shard) halt() { s.stopOnce.Do(func() { close(s.stop) }) }

func (s *shard) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// hasLocked reports whether channel is subscribed on the live connection and
// stays so (see subPlan.has).
func (s *shard) hasLocked(channel string) bool { return s.plan.has(channel) }

// markDirtyLocked has the shard goroutine reconcile channel.
func (s *shard) markDirtyLocked(channel string) {
	s.plan.mark(channel)
	s.wakeLocked()
}

// wakeIfDirtyLocked has the shard goroutine run again for what the plan
// marked while applying answers.
func (s *shard) wakeIfDirtyLocked() {
	if s.plan.pending() {
		s.wakeLocked()
	}
}

func (s *shard) wakeLocked() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// wantLocked is the plan's view of the broker's table for this shard.
func (s *shard) wantLocked(ch string) (mine, wanted bool) {
	st := s.b.chans[ch]
	mine = st != nil && st.shard == s
	return mine, mine && st.wanted
}

// settleLocked takes the waiters of ch, which Redis now holds (or no longer
// needs to), and forgets a channel nobody wants any more.
func (s *shard) settleLocked(ch string, fire []func(error)) []func(error) {
	st := s.b.chans[ch]
	if st == nil || st.shard != s {
		return fire
	}
	fire = st.takeWaiters(fire)
	if !st.wanted {
		delete(s.b.chans, ch)
	}
	return fire
}

// ---- the shard goroutine

func (s *shard) run() {
	defer s.b.wg.Done()
	defer s.closeNode()
	bo := backoff{min: s.b.cfg.MinBackoff, max: s.b.cfg.MaxBackoff}
	for !s.stopped() {
		established, err := s.runSession()
		if s.stopped() {
			return
		}
		if established {
			bo.reset()
			s.b.log.Warn("pub/sub connection lost; reconnecting", "addr", s.addr, "err", err)
		} else {
			s.b.log.Debug("pub/sub reconnect attempt failed", "addr", s.addr, "err", err)
		}
		s.b.owner.lost()
		t := time.NewTimer(bo.next())
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// runSession runs one connection until it fails or the shard stops. established
// reports whether it got as far as resubscribing.
func (s *shard) runSession() (established bool, err error) {
	b := s.b
	node, err := s.nodeClient()
	if err != nil {
		return false, err
	}
	dc, _ := node.Dedicate()
	defer func() {
		// Closing waits up to 1s for a silent (stalled) Redis; reconnect meanwhile.
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			dc.Close()
		}()
	}()
	sess := &session{dc: dc}
	errCh := dc.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage:      func(m rueidis.PubSubMessage) { sess.onMessage(b.owner, m) },
		OnSubscription: func(x rueidis.PubSubSubscription) { s.onSubscription(sess, x) },
	})
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.CommandTimeout)
	err = dc.Do(ctx, dc.B().Ping().Build()).Error()
	cancel()
	if err != nil {
		return false, err
	}
	defer s.endSession()

	b.mu.Lock()
	s.sess = sess
	sess.live.Store(true)
	for ch, st := range b.chans {
		if st.shard == s && st.wanted {
			s.plan.mark(ch)
		}
	}
	b.mu.Unlock()
	n, err := s.sync(dc)
	if err != nil {
		return false, err
	}
	s.sessions++
	if s.sessions > 1 {
		b.stats.reconnects.Add(1)
		b.stats.resubscribed.Add(uint64(n))
		b.log.Info("pub/sub connection re-established", "addr", s.addr, "resubscribed", n)
		b.owner.restored()
	}
	b.mu.Lock()
	s.up = true
	b.owner.updateReadyLocked()
	b.mu.Unlock()

	s.probe.reset()
	tick := time.NewTicker(b.cfg.ProbeInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return true, errStopped
		case err := <-errCh:
			if err == nil {
				err = errors.New("redis: pub/sub hooks released")
			}
			return true, err
		case <-s.wake:
			if _, err = s.sync(dc); err != nil {
				return true, err
			}
		case <-tick.C:
			if err := s.probeTick(); err != nil {
				return true, err
			}
		}
	}
}

func (s *shard) nodeClient() (rueidis.Client, error) {
	b := s.b
	b.mu.Lock()
	node := s.node
	b.mu.Unlock()
	if node != nil {
		return node, nil
	}
	opt := b.nodeOpt
	opt.InitAddress = []string{s.addr}
	node, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.stopped() {
		node.Close()
		return nil, errStopped
	}
	s.node, s.ownNode = node, true
	return node, nil
}

func (s *shard) closeNode() {
	s.b.mu.Lock()
	node := s.node
	if s.ownNode {
		s.node = nil
	}
	s.b.mu.Unlock()
	if s.ownNode && node != nil {
		node.Close()
	}
}

// endSession forgets the connection's subscriptions; pending subscribers are
// told the broker is unavailable.
func (s *shard) endSession() {
	b := s.b
	var fail []func(error)
	b.mu.Lock()
	s.sess.live.Store(false)
	s.sess = nil
	s.up = false
	for ch, st := range b.chans {
		if st.shard == s && !st.internal && s.plan.confirmed(ch) {
			st.lost = true
		}
	}
	b.stats.subscribed.Add(-int64(s.plan.sessionEnded()))
	for ch, st := range b.chans {
		if st.shard != s || len(st.waiters) == 0 {
			continue
		}
		fail = st.takeWaiters(fail)
		if !st.wanted {
			delete(b.chans, ch)
		}
	}
	b.owner.updateReadyLocked()
	b.mu.Unlock()
	for _, f := range fail {
		f(hub.ErrUnavailable)
	}
}

// onSubscription sees every (un)subscribe notice. An unsubscribe we did not
// ask for is Redis dropping the channel (a cluster slot moved away): the
// broker decides where it goes next. A subscribe notice is where a
// resubscription is told: on the connection's reader, before any message
// Redis sends on the channel after it.
func (s *shard) onSubscription(sess *session, x rueidis.PubSubSubscription) {
	b := s.b
	switch x.Kind {
	case "subscribe", "ssubscribe":
		b.mu.Lock()
		st := b.chans[x.Channel]
		again := s.sess == sess && st != nil && st.shard == s && st.lost && st.wanted
		if again {
			st.lost = false
		}
		b.mu.Unlock()
		if again {
			b.owner.resubscribed(x.Channel)
		}
		return
	case "unsubscribe", "sunsubscribe":
	default:
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.sess != sess {
		return
	}
	removed, dropped := s.plan.notice(x.Channel)
	if removed {
		b.stats.subscribed.Add(-1)
	}
	if dropped {
		b.owner.droppedLocked(s, x.Channel)
	}
}

// probeTick sends the next liveness probe, or fails when the last one is overdue.
func (s *shard) probeTick() error {
	b := s.b
	next, err := s.probe.check(time.Now(), b.cfg.ProbeTimeout)
	if err != nil {
		b.stats.probeFailures.Add(1)
		return err
	}
	if !next {
		return nil
	}
	b.mu.Lock()
	ch, node := s.probeChan, s.node
	ok := ch != "" && node != nil && s.hasLocked(ch)
	b.mu.Unlock()
	if ok {
		s.probe.send(node, b.cluster, ch, b.cfg.ProbeTimeout, &b.wg)
	}
	return nil
}

// ---- sending what the plan decides

// sync sends the commands the plan asks for, all batches pipelined in one
// round trip, and hands the answers back to it. It returns how many channels
// Redis confirmed. An error means the connection is unusable (a refusal by
// Redis, like MOVED, is not one).
func (s *shard) sync(dc rueidis.DedicatedClient) (int, error) {
	b := s.b
	var fire []func(error)
	b.mu.Lock()
	groups, settled := s.plan.next(s.wantLocked)
	for _, ch := range settled {
		fire = s.settleLocked(ch, fire)
	}
	b.mu.Unlock()
	for _, f := range fire {
		f(nil)
	}
	if len(groups) == 0 {
		return 0, nil
	}

	cmds := make(rueidis.Commands, len(groups))
	for i, g := range groups {
		cmds[i] = s.command(dc, g.chans, g.unsub)
	}
	b.stats.subscribeCmds.Add(uint64(len(groups) - countUnsub(groups)))

	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.CommandTimeout)
	resps := dc.DoMulti(ctx, cmds...)
	cancel()

	confirmed := 0
	var connErr error
	var failed []func(error)
	fire = fire[:0]
	b.mu.Lock()
	for i, g := range groups {
		err := resps[i].Error()
		if err != nil {
			if rerr, ok := rueidis.IsRedisErr(err); ok && connErr == nil {
				failed = s.refusedLocked(g, rerr, failed)
				continue
			}
			if connErr == nil {
				connErr = err
			}
			continue
		}
		if g.unsub {
			s.unsubscribedLocked(g.chans)
			continue
		}
		confirmed += len(g.chans)
		fire = s.subscribedLocked(g.chans, fire)
	}
	b.mu.Unlock()
	for _, f := range fire {
		f(nil)
	}
	for _, f := range failed {
		f(hub.ErrUnavailable)
	}
	return confirmed, connErr
}

func (s *shard) command(dc rueidis.DedicatedClient, chs []string, unsub bool) rueidis.Completed {
	switch {
	case s.b.cluster && unsub:
		return dc.B().Sunsubscribe().Channel(chs...).Build()
	case s.b.cluster:
		return dc.B().Ssubscribe().Channel(chs...).Build()
	case unsub:
		return dc.B().Unsubscribe().Channel(chs...).Build()
	default:
		return dc.B().Subscribe().Channel(chs...).Build()
	}
}

func countUnsub(gs []cmdGroup) (n int) {
	for _, g := range gs {
		if g.unsub {
			n++
		}
	}
	return n
}

// subscribedLocked records Redis' confirmation and collects the waiters it
// satisfies; the plan marks what is no longer wanted for the next round.
func (s *shard) subscribedLocked(chs []string, fire []func(error)) []func(error) {
	s.b.stats.subscribed.Add(int64(s.plan.subscribed(chs, s.wantLocked)))
	for _, ch := range chs {
		fire = s.settleLocked(ch, fire)
	}
	s.wakeIfDirtyLocked()
	return fire
}

func (s *shard) unsubscribedLocked(chs []string) {
	s.b.stats.subscribed.Add(-int64(s.plan.unsubscribed(chs, s.wantLocked)))
	s.wakeIfDirtyLocked()
}

// refusedLocked handles a command Redis answered with an error. A refused
// UNSUBSCRIBE leaves nothing subscribed; where the channels of a refused
// SUBSCRIBE go (or whether their waiters fail) is the broker's decision.
func (s *shard) refusedLocked(g cmdGroup, rerr *rueidis.RedisError, failed []func(error)) []func(error) {
	s.b.log.Warn("redis refused (un)subscribe", "addr", s.addr, "channels", len(g.chans), "err", rerr.Error())
	if g.unsub {
		s.unsubscribedLocked(g.chans)
		return failed
	}
	movedTo, _ := rerr.IsMoved()
	return s.b.owner.refusedLocked(s, g.chans, movedTo, failed)
}
