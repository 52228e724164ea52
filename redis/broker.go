package redis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redis/rueidis"

	"github.com/wshub/wshub/hub"
)

var (
	_ hub.Broker    = (*Broker)(nil)
	_ hub.Historian = (*Broker)(nil)
	_ shardOwner    = (*Broker)(nil)
)

// DirectHandler receives an addressed send for a connection of this instance
// (see Registry.SendToConn). It runs on a Redis reader goroutine: it must not
// block, and data is only valid during the call.
type DirectHandler func(connID string, data []byte)

// Broker is a hub.Broker on Redis pub/sub (sharded pub/sub on a cluster).
// One subscription connection per instance (per master on a cluster) carries
// every channel this instance has local subscribers for; SUBSCRIBE and
// UNSUBSCRIBE are queued by the hub's calls and sent in batches by one
// goroutine per connection, which also reconnects, resubscribes and probes.
type Broker struct {
	base // settings, counters, the lock and the channel table its shards share

	client   rueidis.Client                // set once by New
	instChan string                        // this instance's channel; set once
	pub      *publisher                    // set once
	router   *router                       // cluster only; set once
	sink     hub.Sink                      // set once by Start, before any message is read
	stream   hub.StreamSink                // sink, when it is one; set with sink
	direct   atomic.Pointer[DirectHandler] // stored by SetDirectHandler, loaded by deliver
	ready    atomic.Bool                   // stored by updateReadyLocked, loaded anywhere

	// Guarded by mu.
	shards  map[string]*shard // by master address; "" when standalone
	probes  map[string]*shard // probe channel -> shard it checks
	slots   *slotPlan         // cluster only: where each channel goes
	started bool
	closing bool     // Close was called
	closed  bool     // subscription connections are stopping
	writers []writer // the registry's, then the presence store's; closed first by Close, last attached first
	kinds   []string // what each writer writes
}

// writer is a goroutine writing this instance's keys: the registry's, the
// presence store's.
type writer interface {
	run()
	close() error
	rewriteAll() // after a reconnect: the node may have restarted empty
}

// ErrUnreachable wraps New's error when Redis could not be reached (as
// opposed to a configuration error): a caller may retry later.
var ErrUnreachable = errors.New("redis: cannot connect")

// ValidateURL checks a standalone Redis URL the way New will parse it.
func ValidateURL(u string) error {
	_, err := rueidis.ParseURL(u)
	return err
}

// New connects to Redis (failing fast with ErrUnreachable when it cannot)
// and prepares the broker; deliveries start with Start.
func New(cfg Config) (*Broker, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	var opt rueidis.ClientOption
	if cfg.URL != "" {
		var err error
		if opt, err = rueidis.ParseURL(cfg.URL); err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		opt.ForceSingleClient = true
		// One pipelined connection, not one per two cores: on a single
		// Redis, PUBLISH (no key) always takes the first, so only keyed
		// commands (the registry's) would open the others, each with 1 MiB
		// of buffers for the gateway's whole life.
		opt.PipelineMultiplex = -1
	} else {
		opt.InitAddress = cfg.ClusterAddrs
		opt.ShuffleInit = true
	}
	opt.DisableCache = true
	// Without it an idle rueidis connection has no reader, so a Redis that
	// restarted is only noticed when the next PUBLISH fails on the dead
	// socket; with it the socket's EOF replaces the connection at once.
	opt.AlwaysPipelining = true
	opt.Dialer.Timeout = cfg.DialTimeout
	opt.ClientName = "wshub-" + cfg.InstanceID
	client, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	b := &Broker{
		base: base{
			cfg:     cfg,
			log:     cfg.Logger.With("component", "redis", "instance", cfg.InstanceID),
			cluster: client.Mode() == rueidis.ClientModeCluster,
			chans:   make(map[string]*chanState),
		},
		client:   client,
		instChan: instPrefix + cfg.InstanceID,
		shards:   make(map[string]*shard),
		probes:   make(map[string]*shard),
	}
	b.owner = b
	if len(cfg.ClusterAddrs) > 0 && !b.cluster {
		client.Close()
		return nil, errors.New("redis: ClusterAddrs given but the server is not a cluster")
	}
	if b.cluster {
		b.nodeOpt = opt
		b.nodeOpt.InitAddress = nil
		b.nodeOpt.ForceSingleClient = true
		b.slots = newSlotPlan(cfg.InstanceID)
		b.router = newRouter(client, cfg, b.log)
	}
	b.pub = newPublisher(client, b.cluster, strconv.FormatUint(rand.Uint64()&0xffffffff, 36), &b.cfg, b.log, &b.stats)
	if cfg.Metrics != nil {
		if err := b.stats.register(cfg.Metrics, b.Ready); err != nil {
			b.pub.close()
			client.Close()
			return nil, fmt.Errorf("redis: metrics: %w", err)
		}
	}
	return b, nil
}

// InstanceID is this instance's name in Redis.
func (b *Broker) InstanceID() string { return b.cfg.InstanceID }

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats { return b.stats.snapshot() }

// SetDirectHandler installs the receiver of addressed sends for this
// instance's connections. Safe at any time; nil drops them (counted).
func (b *Broker) SetDirectHandler(h DirectHandler) {
	if h == nil {
		b.direct.Store(nil)
		return
	}
	b.direct.Store(&h)
}

// Start opens the subscription connection(s) and begins delivering to sink.
// It returns once the work is started; Ready reports when Redis confirmed it.
func (b *Broker) Start(sink hub.Sink) error {
	if sink == nil {
		return errors.New("redis: nil sink")
	}
	b.mu.Lock()
	if b.started || b.closed {
		b.mu.Unlock()
		return errors.New("redis: Start called twice or after Close")
	}
	b.sink = sink
	b.stream, _ = sink.(hub.StreamSink)
	b.started = true
	if !b.cluster {
		s := b.newShardLocked("", b.client)
		b.setProbeLocked(s, b.instChan)
		b.mu.Unlock()
		return nil
	}
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.CommandTimeout)
	defer cancel()
	m, err := b.router.fetch(ctx)
	if err != nil {
		return fmt.Errorf("redis: cluster slots: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("redis: closed during Start")
	}
	b.installLocked(m)
	b.wantInternalLocked(b.instChan)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.router.run(b.applySlots)
	}()
	return nil
}

// Ready reports whether every subscription connection is up and has
// resubscribed everything it carries.
func (b *Broker) Ready() bool { return b.ready.Load() }

// updateReadyLocked is called whenever a shard goes up or down, or the set of
// shards changes.
func (b *Broker) updateReadyLocked() {
	ok := b.started && !b.closed && len(b.shards) > 0
	for _, s := range b.shards {
		ok = ok && s.up
	}
	b.ready.Store(ok)
}

// Publish queues data for PUBLISH (SPUBLISH on a cluster). done is called from
// a publisher goroutine once Redis answered, with hub.ErrUnavailable when the
// broker is down, the queue is full or Redis failed or timed out.
func (b *Broker) Publish(channel string, data []byte, done func(error)) {
	if !b.ready.Load() {
		b.stats.publishErrors.Add(1)
		done(hub.ErrUnavailable)
		return
	}
	b.pub.submit(pubReq{kind: reqPublish, channel: channel, msg: string(data), done: done})
}

// Subscribe asks Redis for channel. done(nil) comes once Redis confirmed the
// subscription on the live connection (also when an Unsubscribe came in
// between: the hub has no one left to tell by then); done(hub.ErrUnavailable)
// at once while the broker is down, or when the connection breaks first.
func (b *Broker) Subscribe(channel string, done func(error)) {
	b.mu.Lock()
	st := b.chans[channel]
	if !b.ready.Load() || strings.HasPrefix(channel, internalPrefix) {
		b.mu.Unlock()
		done(hub.ErrUnavailable)
		return
	}
	if st == nil {
		st = &chanState{wanted: true}
		b.chans[channel] = st
		b.adoptLocked(channel, st)
	}
	st.wanted = true
	if s := st.shard; s != nil && s.hasLocked(channel) {
		b.mu.Unlock()
		done(nil)
		return
	}
	st.waiters = append(st.waiters, done)
	if st.shard != nil {
		st.shard.markDirtyLocked(channel)
	}
	b.mu.Unlock()
}

// Unsubscribe drops channel; the UNSUBSCRIBE is sent in the next batch.
func (b *Broker) Unsubscribe(channel string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.chans[channel]
	if st == nil || st.internal || !st.wanted {
		return
	}
	st.wanted = false
	if len(st.waiters) == 0 {
		b.forgetLocked(channel)
	}
	if st.shard != nil {
		st.shard.markDirtyLocked(channel)
	}
}

// Close stops the subscription connections, deletes this instance's presence
// keys and registry entries (see Presence.Close, Registry.Close), fails
// pending subscriptions and closes the client. Queued publications are still attempted.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return nil
	}
	b.closing = true
	ws := b.writers
	b.mu.Unlock()
	// The presence store (attached after the registry) goes first: its keys
	// are deleted while the registry's heartbeat still vouches for them.
	for i := len(ws) - 1; i >= 0; i-- {
		ws[i].close()
	}
	b.mu.Lock()
	b.closed = true
	b.updateReadyLocked()
	for _, s := range b.shards {
		s.halt()
	}
	if b.router != nil {
		b.router.halt()
	}
	b.mu.Unlock()
	b.wg.Wait()
	b.mu.Lock()
	var fail []func(error)
	for ch, st := range b.chans {
		fail = st.takeWaiters(fail)
		delete(b.chans, ch)
	}
	b.mu.Unlock()
	for _, f := range fail {
		f(hub.ErrUnavailable)
	}
	b.pub.close()
	b.client.Close()
	return nil
}

// attach makes w the broker's writer of kind (one of each) and starts it:
// Close closes it first, and a reconnect has it write every key again.
func (b *Broker) attach(kind string, w writer) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing {
		return errors.New("redis: broker closed")
	}
	if slices.Contains(b.kinds, kind) {
		return errors.New("redis: broker already has a " + kind)
	}
	b.writers, b.kinds = append(b.writers, w), append(b.kinds, kind)
	go w.run()
	return nil
}

// env is what the broker's writers share of it.
func (b *Broker) env() writerEnv {
	return writerEnv{client: b.client, id: b.cfg.InstanceID, timeout: b.cfg.CommandTimeout, log: b.log, stats: &b.stats, cluster: b.cluster}
}

// ---- the channel table

// adoptLocked assigns a new channel to its connection.
func (b *Broker) adoptLocked(channel string, st *chanState) {
	if b.slots == nil {
		st.shard = b.shards[""]
		return
	}
	to, refresh := b.slots.adopt(channel)
	b.moveLocked(channel, st, to)
	if refresh {
		b.router.poke()
	}
}

// forgetLocked deletes a channel from the table.
func (b *Broker) forgetLocked(channel string) {
	delete(b.chans, channel)
	if b.slots != nil {
		b.slots.forget(channel)
	}
}

// wantInternalLocked subscribes an internal channel for the broker's lifetime.
func (b *Broker) wantInternalLocked(channel string) {
	st := &chanState{wanted: true, internal: true}
	b.chans[channel] = st
	b.adoptLocked(channel, st)
	if st.shard != nil {
		st.shard.markDirtyLocked(channel)
	}
}

// placeLocked is the slot plan's view of the table.
func (b *Broker) placeLocked(ch string) (place, bool) {
	st := b.chans[ch]
	if st == nil {
		return place{}, false
	}
	pl := place{wanted: st.wanted, waiting: len(st.waiters) > 0}
	if st.shard != nil {
		pl.home = st.shard.addr
	}
	return pl, true
}

// ---- shards and slot moves (the decisions are the slot plan's)

func (b *Broker) newShardLocked(addr string, node rueidis.Client) *shard {
	s := newShard(&b.base, addr, node)
	b.shards[addr] = s
	b.updateReadyLocked()
	return s
}

// shardLocked is the shard of master addr, opened (with its probe channel)
// on first use; nil once the broker is closed.
func (b *Broker) shardLocked(addr string) *shard {
	if s := b.shards[addr]; s != nil {
		return s
	}
	if b.closed {
		return nil
	}
	s := b.newShardLocked(addr, nil)
	b.setProbeLocked(s, b.slots.probeFor(addr, ""))
	return s
}

// moveLocked carries out one move: both the old and the new shard reconcile
// the channel (the old one unsubscribes, the new one subscribes), and its
// waiters travel with it. A channel left without a shard that nobody needs
// is forgotten.
func (b *Broker) moveLocked(channel string, st *chanState, to string) {
	var dst *shard
	if to != "" {
		dst = b.shardLocked(to)
	}
	from := st.shard
	if from == dst {
		return
	}
	if from != nil && from.plan.confirmed(channel) && !st.internal {
		st.lost = true
	}
	st.shard = dst
	if from != nil {
		from.markDirtyLocked(channel)
	}
	if dst != nil {
		dst.markDirtyLocked(channel)
	} else if !st.needed() {
		b.forgetLocked(channel)
	}
}

func (b *Broker) applyMovesLocked(moves []move) {
	for _, mv := range moves {
		if st := b.chans[mv.ch]; st != nil {
			b.moveLocked(mv.ch, st, mv.to)
		}
	}
}

// applySlots is the router's callback: a new slot map, or the error reading
// one (whoever waits for an unroutable channel learns it then, not at Close).
// It asks for another read soon while channels still wait for a route.
func (b *Broker) applySlots(m *slotMap, err error) (retry bool) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return false
	}
	if err != nil {
		var fail []func(error)
		for _, ch := range b.slots.waiting() {
			if st := b.chans[ch]; st != nil {
				fail = st.takeWaiters(fail)
				if !st.needed() {
					b.forgetLocked(ch)
				}
			}
		}
		b.mu.Unlock()
		for _, f := range fail {
			f(hub.ErrUnavailable)
		}
		return true
	}
	retry = b.installLocked(m)
	b.mu.Unlock()
	return retry
}

// installLocked carries out a new slot map: one shard per master, every
// channel on the shard that owns its slot, a probe channel per shard.
func (b *Broker) installLocked(m *slotMap) (refresh bool) {
	masters, moves, refresh := b.slots.install(m, maps.Keys(b.chans), b.placeLocked)
	keep := make(map[string]bool, len(masters))
	for _, a := range masters {
		keep[a] = true
		b.shardLocked(a)
	}
	b.applyMovesLocked(moves)
	for a, s := range b.shards {
		if !keep[a] {
			s.halt()
			delete(b.shards, a)
			b.dropProbeLocked(s)
		}
	}
	// A probe channel whose slot moved gets a new name; that name may be
	// the one another shard gave up in this loop, so shards that lost theirs
	// to such a takeover are served in a second pass.
	shards := slices.Sorted(maps.Keys(b.shards))
	for _, a := range shards {
		s := b.shards[a]
		if ch := b.slots.probeFor(a, s.probeChan); ch != s.probeChan {
			b.setProbeLocked(s, ch)
		}
	}
	for _, a := range shards {
		if s := b.shards[a]; s.probeChan == "" {
			b.setProbeLocked(s, b.slots.probeFor(a, ""))
		}
	}
	b.updateReadyLocked()
	return refresh
}

// setProbeLocked makes channel the probe channel of s. Probe names follow
// slots, so a shard whose slot moved to s may still hold channel: it gives
// the name up (and gets a new one at the next slot map), and the channel
// moves to s.
func (b *Broker) setProbeLocked(s *shard, channel string) {
	b.dropProbeLocked(s)
	if channel == "" {
		return
	}
	if t := b.probes[channel]; t != nil {
		t.probeChan = ""
	}
	s.probeChan = channel
	b.probes[channel] = s
	st := b.chans[channel]
	switch {
	case st == nil:
		b.wantInternalLocked(channel)
	case b.slots != nil && st.shard != s:
		b.moveLocked(channel, st, s.addr)
	}
}

// dropProbeLocked retires the probe channel of s, unless another shard took
// the name over.
func (b *Broker) dropProbeLocked(s *shard) {
	ch := s.probeChan
	s.probeChan = ""
	if ch == "" || b.probes[ch] != s {
		return
	}
	delete(b.probes, ch)
	if st := b.chans[ch]; st != nil {
		st.internal, st.wanted = false, false
		b.forgetLocked(ch)
		if st.shard != nil {
			st.shard.markDirtyLocked(ch)
		}
	}
}

// ---- what the shards tell the broker (shardOwner)

// deliver handles what the current subscription connections read (see
// session.onMessage). It runs on rueidis' reader goroutine, one per
// connection, so messages of a channel are handed on in Redis' order; the
// sink never blocks.
func (b *Broker) deliver(m rueidis.PubSubMessage) {
	if !strings.HasPrefix(m.Channel, internalPrefix) {
		if len(m.Message) == 0 || m.Message[0] != histMark {
			b.sink.Deliver(m.Channel, stringBytes(m.Message))
			return
		}
		pos, data, ok := parseHistMessage(m.Message)
		switch {
		case !ok:
			b.stats.dropped.Add(1)
		case b.stream != nil:
			b.stream.DeliverAt(m.Channel, pos, data)
		default:
			b.sink.Deliver(m.Channel, data)
		}
		return
	}
	if seq, ok := parseProbe(m.Message); ok {
		b.mu.Lock()
		s := b.probes[m.Channel]
		b.mu.Unlock()
		if s != nil {
			s.probe.answered(seq)
			return
		}
	} else if m.Channel == b.instChan {
		if h := b.direct.Load(); h != nil && parseDirect(m.Message, *h) == nil {
			return
		}
	}
	b.stats.dropped.Add(1)
}

// resubscribed tells a StreamSink that ch was subscribed again after a loss.
func (b *Broker) resubscribed(ch string) {
	if b.stream != nil {
		b.stream.Resubscribed(ch)
	}
}

func (b *Broker) lost() {
	if b.router != nil {
		b.router.poke()
	}
}

// restored has the registry and the presence store write their keys again
// (idempotent): the node may have restarted empty, and a refresh would
// notice only later.
func (b *Broker) restored() {
	b.mu.Lock()
	for _, w := range b.writers {
		w.rewriteAll()
	}
	b.mu.Unlock()
}

// droppedLocked: standalone, the channel is subscribed again on the same
// connection; on a cluster it waits for a slot refresh (see slotPlan.dropped).
func (b *Broker) droppedLocked(s *shard, ch string) {
	st := b.chans[ch]
	if b.slots == nil {
		if st == nil || st.shard != s || !st.wanted {
			return
		}
		st.lost = !st.internal
		s.markDirtyLocked(ch)
	} else {
		if b.shards[s.addr] != s {
			return // halted: its channels have moved on
		}
		mv, ok := b.slots.dropped(s.addr, ch, b.placeLocked)
		if !ok {
			return
		}
		st.lost = !st.internal
		b.applyMovesLocked([]move{mv})
		b.router.poke()
	}
	b.stats.resubscribed.Add(1)
	b.log.Debug("redis dropped a subscription; subscribing again", "addr", s.addr, "channel", ch)
}

// refusedLocked: a cluster sends the channels where the slot plan says (and
// reads the slot map again); standalone Redis has no reason to refuse a
// SUBSCRIBE, so its waiters are failed.
func (b *Broker) refusedLocked(s *shard, chs []string, movedTo string, failed []func(error)) []func(error) {
	if b.slots == nil {
		for _, ch := range chs {
			st := b.chans[ch]
			if st == nil || st.shard != s {
				continue
			}
			failed = st.takeWaiters(failed)
			if !st.wanted {
				b.forgetLocked(ch)
			}
		}
		return failed
	}
	if b.shards[s.addr] != s {
		return failed // halted: its channels have moved on
	}
	b.applyMovesLocked(b.slots.refused(s.addr, chs, movedTo, b.placeLocked))
	b.router.poke()
	return failed
}
