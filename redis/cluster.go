package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/wshub/wshub/hub"
)

const numSlots = 16384

// slotMap is the master address of every cluster slot ("" when unknown).
type slotMap [numSlots]string

// router keeps the slot map of a cluster and routes channels to shards.
// Its fields are guarded by Broker.mu except the channels.
type router struct {
	slots    *slotMap
	unrouted map[string]struct{} // wanted channels without a known master
	wake     chan struct{}
	stop     chan struct{}
}

func newRouter() *router {
	return &router{
		slots:    new(slotMap),
		unrouted: make(map[string]struct{}),
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
}

// poke asks for a slot map refresh soon.
func (r *router) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// runRouter refreshes the slot map periodically and when poked (a refused
// SSUBSCRIBE, an unexpected SUNSUBSCRIBE, a lost connection).
func (b *Broker) runRouter() {
	defer b.wg.Done()
	r := b.router
	t := time.NewTicker(b.cfg.ClusterRefresh)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		case <-r.wake:
		}
		if err := b.refreshSlots(); err != nil {
			b.log.Warn("cluster slot refresh failed", "err", err)
			select {
			case <-r.stop:
				return
			case <-time.After(b.cfg.MinBackoff * 4):
				r.poke()
			}
		}
	}
}

func (b *Broker) refreshSlots() error {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.CommandTimeout)
	m, err := b.fetchSlots(ctx)
	cancel()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	if err != nil {
		// Whoever waits for an unroutable channel learns it now, not at Close.
		var fail []func(error)
		for ch := range b.router.unrouted {
			if st := b.chans[ch]; st != nil {
				fail = append(fail, st.waiters...)
				st.waiters = nil
			}
		}
		b.mu.Unlock()
		for _, f := range fail {
			f(hub.ErrUnavailable)
		}
		return err
	}
	b.applySlotsLocked(m)
	b.mu.Unlock()
	return nil
}

// fetchSlots reads CLUSTER SLOTS from the known nodes in random order until
// one answers: a dead master must not hide the map its peers already have.
func (b *Broker) fetchSlots(ctx context.Context) (*slotMap, error) {
	var errs error
	for addr, n := range b.client.Nodes() {
		try, cancel := context.WithTimeout(ctx, b.cfg.DialTimeout)
		m, err := b.parseSlots(n.Do(try, n.B().ClusterSlots().Build()))
		cancel()
		if err == nil {
			return m, nil
		}
		errs = errors.Join(errs, fmt.Errorf("%s: %w", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	if errs == nil {
		errs = errors.New("redis: no cluster node known")
	}
	return nil, errs
}

func (b *Broker) parseSlots(res rueidis.RedisResult) (*slotMap, error) {
	entries, err := res.ToArray()
	if err != nil {
		return nil, err
	}
	m := new(slotMap)
	for _, e := range entries {
		v, err := e.ToArray()
		if err != nil || len(v) < 3 {
			return nil, errors.New("redis: malformed CLUSTER SLOTS entry")
		}
		start, err1 := v[0].AsInt64()
		end, err2 := v[1].AsInt64()
		node, err3 := v[2].ToArray()
		if err := errors.Join(err1, err2, err3); err != nil || len(node) < 2 || start < 0 || end >= numSlots || start > end {
			return nil, errors.New("redis: malformed CLUSTER SLOTS entry")
		}
		host, _ := node[0].ToString()
		port, _ := node[1].AsInt64()
		if host == "" { // "the node that answered": fall back to a seed's host
			host, _, _ = net.SplitHostPort(b.cfg.ClusterAddrs[0])
		}
		addr := net.JoinHostPort(host, strconv.FormatInt(port, 10))
		for i := start; i <= end; i++ {
			m[i] = addr
		}
	}
	return m, nil
}

// applySlotsLocked installs a new slot map: one shard per master, every
// channel on the shard that owns its slot, a probe channel per shard.
func (b *Broker) applySlotsLocked(m *slotMap) {
	r := b.router
	changed := *r.slots != *m
	r.slots = m
	masters := make(map[string]struct{})
	for _, a := range m {
		if a != "" {
			masters[a] = struct{}{}
		}
	}
	for a := range masters {
		if b.shards[a] == nil {
			b.clusterShardLocked(a)
		}
	}
	if changed || len(r.unrouted) > 0 {
		for ch, st := range b.chans {
			b.moveLocked(ch, st, b.shardForLocked(ch))
		}
	}
	for a, s := range b.shards {
		if _, ok := masters[a]; !ok {
			s.halt()
			delete(b.shards, a)
			b.dropProbeLocked(s)
		}
	}
	for _, s := range b.shards {
		if st := b.chans[s.probeChan]; st == nil || st.shard != s {
			b.setProbeLocked(s, b.probeChannelFor(s.addr))
		}
	}
	b.updateReadyLocked()
}

func (b *Broker) clusterShardLocked(addr string) *shard {
	s := b.newShardLocked(addr, nil)
	b.setProbeLocked(s, b.probeChannelFor(addr))
	return s
}

// probeChannelFor names a probe channel in a slot that addr owns.
func (b *Broker) probeChannelFor(addr string) string {
	for i, a := range b.router.slots {
		if a == addr {
			return probePrefix + b.cfg.InstanceID + ":{" + tagForSlot(uint16(i)) + "}"
		}
	}
	return ""
}

func (b *Broker) dropProbeLocked(s *shard) {
	if s.probeChan == "" {
		return
	}
	delete(b.probes, s.probeChan)
	if st := b.chans[s.probeChan]; st != nil {
		st.internal, st.wanted = false, false
		delete(b.chans, s.probeChan)
		if st.shard != nil {
			st.shard.markDirtyLocked(s.probeChan)
		}
	}
	s.probeChan = ""
}

// shardForLocked is the shard of the master owning channel's slot, created on
// first use; nil when the slot's master is unknown.
func (b *Broker) shardForLocked(channel string) *shard {
	addr := b.router.slots[slotOf(channel)]
	if addr == "" {
		return nil
	}
	if s := b.shards[addr]; s != nil {
		return s
	}
	return b.clusterShardLocked(addr)
}

// learnSlotLocked records a MOVED answer until the next full refresh.
func (b *Broker) learnSlotLocked(slot uint16, addr string) {
	b.router.slots[slot] = addr
}

// moveLocked assigns channel to shard to (nil: unrouted for now). Both the old
// and the new shard reconcile it: the old one unsubscribes, the new one
// subscribes; waiters travel with the channel.
func (b *Broker) moveLocked(channel string, st *chanState, to *shard) {
	from := st.shard
	if from == to && (to != nil || b.router == nil) {
		return
	}
	st.shard = to
	if from != nil {
		from.markDirtyLocked(channel)
	}
	if to != nil {
		delete(b.router.unrouted, channel)
		to.markDirtyLocked(channel)
		return
	}
	if st.wanted || len(st.waiters) > 0 {
		b.router.unrouted[channel] = struct{}{}
		b.router.poke()
	}
}

// ---- slots (https://redis.io/docs/reference/cluster-spec/#key-distribution-model)

var crcTable [256]uint16

func init() {
	for i := range crcTable {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		crcTable[i] = crc
	}
}

// crc16 is CRC-16/XMODEM, the cluster's key hash.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crcTable[byte(crc>>8)^s[i]]
	}
	return crc
}

// slotOf is the cluster slot of a key or shard channel, honouring {hash tags}.
func slotOf(key string) uint16 {
	for s := 0; s < len(key); s++ {
		if key[s] != '{' {
			continue
		}
		for e := s + 1; e < len(key); e++ {
			if key[e] == '}' {
				if e > s+1 {
					key = key[s+1 : e]
				}
				return crc16(key) & (numSlots - 1)
			}
		}
		break
	}
	return crc16(key) & (numSlots - 1)
}

// tagForSlot finds a short hash tag that lands in slot (about 16k tries).
func tagForSlot(slot uint16) string {
	for i := 0; ; i++ {
		t := strconv.Itoa(i)
		if crc16(t)&(numSlots-1) == slot {
			return t
		}
	}
}

// groupBySlot splits channels by cluster slot, keeping their order.
func groupBySlot(chs []string) [][]string {
	if len(chs) == 0 {
		return nil
	}
	idx := make(map[uint16]int)
	var out [][]string
	for _, ch := range chs {
		sl := slotOf(ch)
		i, ok := idx[sl]
		if !ok {
			i = len(out)
			idx[sl] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], ch)
	}
	return out
}
