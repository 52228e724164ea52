package redis

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/wshub/wshub/hub"
)

var (
	errStopped      = errors.New("redis: shard stopped")
	errProbeTimeout = errors.New("redis: liveness probe timed out")
)

// shard owns one subscription connection (the only one when standalone, one
// per master on a cluster) and the goroutine that drives it: connect,
// resubscribe, batch SUBSCRIBE/UNSUBSCRIBE, probe, and reconnect with backoff.
type shard struct {
	b    *Broker
	addr string

	wake     chan struct{} // cap 1: marked channels to reconcile; sent by markDirtyLocked, read by run
	stop     chan struct{} // closed by halt; read by run
	stopOnce sync.Once     // owned by halt

	// Guarded by Broker.mu.
	node      rueidis.Client // client to dedicate the connection from; set by nodeClient, cleared by closeNode
	ownNode   bool           // node was created for this shard (cluster); set by nodeClient
	sess      *session       // current connection; nil while down; set by runSession, cleared by endSession
	up        bool           // connected and initial resubscription confirmed; set by runSession
	plan      *subPlan       // what to (un)subscribe on sess; decides, the shard goroutine sends
	probeChan string         // set by Broker.setProbeLocked / dropProbeLocked

	// Owned by the shard goroutine, except the atomics.
	probeSeq  uint64
	probeSent time.Time
	probeAck  atomic.Uint64 // last probe that came back (set by the hook)
	probeVoid atomic.Uint64 // last probe Redis refused to publish
	sessions  int
}

// session is one connection's identity; hooks of an older connection are ignored.
type session struct {
	dc rueidis.DedicatedClient
	// live is set while this is the shard's current connection. A replaced
	// connection closes in the background and may still read messages that
	// the new one delivers too: its reader drops them once live is false.
	live atomic.Bool
}

// onMessage hands on messages of the current connection only.
func (sess *session) onMessage(b *Broker, m rueidis.PubSubMessage) {
	if sess.live.Load() {
		b.onMessage(m)
	}
}

func (b *Broker) newShardLocked(addr string, node rueidis.Client) *shard {
	s := &shard{
		b:    b,
		addr: addr,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		node: node,
		plan: newSubPlan(b.cfg.SubscribeBatch, b.cluster),
	}
	b.shards[addr] = s
	b.wg.Add(1)
	go s.run()
	b.updateReadyLocked()
	return s
}

func (s *shard) halt() { s.stopOnce.Do(func() { close(s.stop) }) }

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

// hasLocked reports whether channel is subscribed on the live connection and
// stays so (see subPlan.has).
func (s *shard) hasLocked(channel string) bool { return s.plan.has(channel) }

// markDirtyLocked has the shard goroutine reconcile channel.
func (s *shard) markDirtyLocked(channel string) {
	s.plan.mark(channel)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *shard) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

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
		if s.b.router != nil {
			s.b.router.poke()
		}
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
		OnMessage:      func(m rueidis.PubSubMessage) { sess.onMessage(b, m) },
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
		// The node may have restarted empty: have the registry write its
		// entries again (idempotent) rather than wait for a refresh to notice.
		b.mu.Lock()
		if reg := b.registry; reg != nil {
			reg.rewrite.Store(true)
		}
		b.mu.Unlock()
	}
	b.mu.Lock()
	s.up = true
	b.updateReadyLocked()
	b.mu.Unlock()

	s.probeSent = time.Time{}
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
			if err := s.probe(); err != nil {
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
	if s.stopped() || b.closed {
		node.Close()
		return nil, errStopped
	}
	s.node, s.ownNode = node, true
	return node, nil
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
	b.stats.subscribed.Add(-int64(s.plan.sessionEnded()))
	for ch, st := range b.chans {
		if st.shard != s || len(st.waiters) == 0 {
			continue
		}
		fail = append(fail, st.waiters...)
		st.waiters = nil
		if !st.wanted {
			delete(b.chans, ch)
		}
	}
	b.updateReadyLocked()
	b.mu.Unlock()
	for _, f := range fail {
		f(hub.ErrUnavailable)
	}
}

// onSubscription sees every (un)subscribe notice. An unsubscribe we did not
// ask for is Redis dropping the channel (a cluster slot moved away): the
// channel is routed again and resubscribed.
func (s *shard) onSubscription(sess *session, x rueidis.PubSubSubscription) {
	if x.Kind != "unsubscribe" && x.Kind != "sunsubscribe" {
		return
	}
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.sess != sess {
		return
	}
	removed, dropped := s.plan.notice(x.Channel)
	if removed {
		b.stats.subscribed.Add(-1)
	}
	if !dropped {
		return
	}
	st := b.chans[x.Channel]
	if st == nil || st.shard != s || !st.wanted {
		return
	}
	b.stats.resubscribed.Add(1)
	b.log.Debug("redis dropped a subscription; subscribing again", "addr", s.addr, "channel", x.Channel)
	if b.router != nil {
		b.moveLocked(x.Channel, st, nil)
		return
	}
	s.markDirtyLocked(x.Channel)
}

// probe sends the next liveness probe, or fails when the last one is overdue.
// The probe is published through this shard's own node, so on a cluster a
// stale slot map elsewhere cannot fail it; when Redis answers the PUBLISH with
// an error (CLUSTERDOWN during a failover, MOVED) it is alive and the probe
// proves nothing either way.
func (s *shard) probe() error {
	b := s.b
	if !s.probeSent.IsZero() {
		if s.probeAck.Load() >= s.probeSeq || s.probeVoid.Load() >= s.probeSeq {
			s.probeSent = time.Time{}
		} else if time.Since(s.probeSent) > b.cfg.ProbeTimeout {
			b.stats.probeFailures.Add(1)
			return errProbeTimeout
		} else {
			return nil
		}
	}
	b.mu.Lock()
	ch, node := s.probeChan, s.node
	ok := ch != "" && node != nil && s.hasLocked(ch)
	b.mu.Unlock()
	if !ok {
		return nil
	}
	s.probeSeq++
	s.probeSent = time.Now()
	seq := s.probeSeq
	msg := string(strconv.AppendUint([]byte{envProbe}, seq, 10))
	var cmd rueidis.Completed
	if b.cluster {
		cmd = node.B().Spublish().Channel(ch).Message(msg).Build()
	} else {
		cmd = node.B().Publish().Channel(ch).Message(msg).Build()
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.ProbeTimeout)
		err := node.Do(ctx, cmd).Error()
		cancel()
		if _, ok := rueidis.IsRedisErr(err); ok {
			s.probeVoid.Store(seq)
		}
	}()
	return nil
}
