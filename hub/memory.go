package hub

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/cpu"
)

// MemoryBroker is the single-instance Broker, and a Historian: a
// publication is delivered to the local sink synchronously. Deliveries are
// serialized per channel by a lock sharded by channel hash, which gives
// every subscriber the same order while publications on unrelated channels
// proceed in parallel. Streams live in a history.Store (memory_history.go).
type MemoryBroker struct {
	sink    atomic.Pointer[sinks]
	closed  atomic.Bool
	stripes [numStripes]struct {
		mu sync.Mutex
		_  cpu.CacheLinePad
	}
	history memoryHistory
}

// sinks is the sink given to Start, and the same as a StreamSink if it is one.
type sinks struct {
	Sink
	stream StreamSink
}

// MemoryConfig configures a MemoryBroker; the zero value is the default.
type MemoryConfig struct {
	// HistoryMaxBytes bounds the memory of every stream together
	// (history_max_bytes); 0 means DefaultHistoryMaxBytes.
	HistoryMaxBytes int64
	// Epochs gives new streams their epochs (history.NewStore); nil means
	// history.RandomEpochs().
	Epochs func() string
	// SweepEvery is how often expired streams are dropped; 0 means a second.
	SweepEvery time.Duration
}

// DefaultHistoryMaxBytes is the history budget of a MemoryBroker by default.
const DefaultHistoryMaxBytes = 64 << 20

// NewMemoryBroker returns the default, in-process broker.
func NewMemoryBroker() *MemoryBroker { return NewMemoryBrokerWith(MemoryConfig{}) }

// NewMemoryBrokerWith returns an in-process broker configured by c.
func NewMemoryBrokerWith(c MemoryConfig) *MemoryBroker {
	if c.HistoryMaxBytes <= 0 {
		c.HistoryMaxBytes = DefaultHistoryMaxBytes
	}
	if c.SweepEvery <= 0 {
		c.SweepEvery = time.Second
	}
	b := &MemoryBroker{}
	b.history.init(c)
	return b
}

// Start sets the sink that receives every publication.
func (b *MemoryBroker) Start(sink Sink) error {
	ss, _ := sink.(StreamSink)
	b.sink.Store(&sinks{Sink: sink, stream: ss})
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
	sink.Deliver(channel, data)
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

// Close makes later calls report ErrUnavailable and stops sweeping.
func (b *MemoryBroker) Close() error {
	if !b.closed.Swap(true) {
		b.history.close()
	}
	return nil
}
