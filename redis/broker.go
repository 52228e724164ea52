package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/rueidis"

	"github.com/wshub/wshub/hub"
)

var _ hub.Broker = (*Broker)(nil)

// Prefixes of internal channels; '#' cannot appear in client channel names.
const (
	internalPrefix = "ws#"
	instPrefix     = "ws#inst:"
	probePrefix    = "ws#probe:"
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
	cfg      Config
	log      *slog.Logger
	client   rueidis.Client
	nodeOpt  rueidis.ClientOption // template for per-master clients (cluster)
	cluster  bool
	instChan string
	stats    stats
	pub      *publisher
	sink     hub.Sink
	direct   atomic.Pointer[DirectHandler]
	ready    atomic.Bool

	mu       sync.Mutex
	chans    map[string]*chanState // channels wanted or still settling
	shards   map[string]*shard     // by master address; "" when standalone
	probes   map[string]*shard     // probe channel -> shard it checks
	started  bool
	closing  bool // Close was called
	closed   bool // subscription connections are stopping
	registry *Registry
	router   *router // cluster only

	wg sync.WaitGroup // shard and router goroutines
}

// chanState is one channel's desired state; guarded by Broker.mu.
type chanState struct {
	shard    *shard // connection it belongs on; nil while a cluster route is unknown
	wanted   bool   // the hub (or the broker itself, for internal channels) wants it
	internal bool   // instance or probe channel: never unsubscribed by the hub
	waiters  []func(error)
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
		cfg:      cfg,
		log:      cfg.Logger.With("component", "redis", "instance", cfg.InstanceID),
		client:   client,
		cluster:  client.Mode() == rueidis.ClientModeCluster,
		instChan: instPrefix + cfg.InstanceID,
		chans:    make(map[string]*chanState),
		shards:   make(map[string]*shard),
		probes:   make(map[string]*shard),
	}
	if len(cfg.ClusterAddrs) > 0 && !b.cluster {
		client.Close()
		return nil, errors.New("redis: ClusterAddrs given but the server is not a cluster")
	}
	if b.cluster {
		b.nodeOpt = opt
		b.nodeOpt.InitAddress = nil
		b.nodeOpt.ForceSingleClient = true
		b.router = newRouter()
	}
	b.pub = newPublisher(b)
	if cfg.Metrics != nil {
		if err := b.registerMetrics(cfg.Metrics); err != nil {
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
	m, err := b.fetchSlots(ctx)
	if err != nil {
		return fmt.Errorf("redis: cluster slots: %w", err)
	}
	b.mu.Lock()
	b.applySlotsLocked(m)
	b.wantInternalLocked(b.instChan)
	b.mu.Unlock()
	b.wg.Add(1)
	go b.runRouter()
	return nil
}

// Ready reports whether every subscription connection is up and has
// resubscribed everything it carries.
func (b *Broker) Ready() bool { return b.ready.Load() }

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
	b.pub.submit(channel, string(data), done)
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
		st = &chanState{}
		b.chans[channel] = st
		b.routeLocked(channel, st)
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
		delete(b.chans, channel)
		if b.router != nil {
			delete(b.router.unrouted, channel)
		}
	}
	if st.shard != nil {
		st.shard.markDirtyLocked(channel)
	}
}

// routeLocked assigns a new channel to its connection.
func (b *Broker) routeLocked(channel string, st *chanState) {
	if !b.cluster {
		st.shard = b.shards[""]
		return
	}
	b.moveLocked(channel, st, b.shardForLocked(channel))
}

// wantInternalLocked subscribes an internal channel for the broker's lifetime.
func (b *Broker) wantInternalLocked(channel string) *chanState {
	st := &chanState{wanted: true, internal: true}
	b.chans[channel] = st
	b.routeLocked(channel, st)
	if st.shard != nil {
		st.shard.markDirtyLocked(channel)
	}
	return st
}

// setProbeLocked makes channel the probe channel of s.
func (b *Broker) setProbeLocked(s *shard, channel string) {
	if s.probeChan != "" {
		b.dropProbeLocked(s)
	}
	if channel == "" {
		return
	}
	s.probeChan = channel
	b.probes[channel] = s
	if b.chans[channel] == nil {
		b.wantInternalLocked(channel)
	}
}

// onMessage handles what the current subscription connections read (see
// session.onMessage). It runs on rueidis' reader goroutine, one per
// connection, so messages of a channel are handed on in Redis' order; the
// sink never blocks.
func (b *Broker) onMessage(m rueidis.PubSubMessage) {
	if !strings.HasPrefix(m.Channel, internalPrefix) {
		b.sink.Deliver(m.Channel, stringBytes(m.Message))
		return
	}
	msg := m.Message
	switch {
	case len(msg) > 0 && msg[0] == envProbe:
		seq, _, ok := cutNumber(msg[1:]+"\n", '\n')
		b.mu.Lock()
		s := b.probes[m.Channel]
		b.mu.Unlock()
		if ok && s != nil {
			s.probeAck.Store(uint64(seq))
			return
		}
	case len(msg) > 0 && msg[0] == envDirect && m.Channel == b.instChan:
		if h := b.direct.Load(); h != nil && parseDirect(msg, *h) == nil {
			return
		}
	}
	b.stats.dropped.Add(1)
}

// Close stops the subscription connections, deletes this instance's registry
// entries (see Registry.Close), fails pending subscriptions and closes the
// client. Queued publications are still attempted.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return nil
	}
	b.closing = true
	reg := b.registry
	b.mu.Unlock()
	if reg != nil {
		reg.Close()
	}
	b.mu.Lock()
	b.closed = true
	b.updateReadyLocked()
	for _, s := range b.shards {
		s.halt()
	}
	if b.router != nil {
		close(b.router.stop)
	}
	b.mu.Unlock()
	b.wg.Wait()
	b.mu.Lock()
	var fail []func(error)
	for ch, st := range b.chans {
		fail = append(fail, st.waiters...)
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
