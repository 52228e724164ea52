package hub

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/cpu"
)

// MemoryBroker is the single-instance Broker: a publication is delivered to
// the local sink synchronously. Deliveries are serialized per channel by a
// lock sharded by channel hash, which gives every subscriber the same order
// while publications on unrelated channels proceed in parallel.
type MemoryBroker struct {
	sink    atomic.Pointer[Sink]
	closed  atomic.Bool
	stripes [numStripes]struct {
		mu sync.Mutex
		_  cpu.CacheLinePad
	}
}

// NewMemoryBroker returns the default, in-process broker.
func NewMemoryBroker() *MemoryBroker { return &MemoryBroker{} }

// Start sets the sink that receives every publication.
func (b *MemoryBroker) Start(sink Sink) error {
	b.sink.Store(&sink)
	return nil
}

// Publish delivers data to the sink before calling done(nil). Before Start
// or after Close it reports ErrUnavailable.
func (b *MemoryBroker) Publish(channel string, data []byte, done func(error)) {
	sink := b.sink.Load()
	if sink == nil || b.closed.Load() {
		done(ErrUnavailable)
		return
	}
	sh := &b.stripes[ChannelHash(channel)%numStripes]
	sh.mu.Lock()
	(*sink).Deliver(channel, data)
	sh.mu.Unlock()
	done(nil)
}

// Subscribe confirms at once: every later Publish reaches the sink.
func (b *MemoryBroker) Subscribe(channel string, done func(error)) {
	if b.closed.Load() {
		done(ErrUnavailable)
		return
	}
	done(nil)
}

// Unsubscribe has nothing to release.
func (b *MemoryBroker) Unsubscribe(channel string) {}

// Ready reports true until Close.
func (b *MemoryBroker) Ready() bool { return !b.closed.Load() }

// Close makes later calls report ErrUnavailable.
func (b *MemoryBroker) Close() error {
	b.closed.Store(true)
	return nil
}
