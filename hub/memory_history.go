package hub

import (
	"sync"
	"time"

	"github.com/wshub/wshub/hub/history"
)

var _ Historian = (*MemoryBroker)(nil)

// memoryHistory is the MemoryBroker's streams. mu guards store; it is
// taken inside a channel's stripe lock, briefly (an append or a read, not
// the delivery), so one store keeps one byte budget and one eviction order
// for every channel.
type memoryHistory struct {
	mu    sync.Mutex
	store *history.Store
	every time.Duration
	// The sweeper starts with the first history publication: a broker
	// whose channels keep no history runs no goroutine.
	start sync.Once
	stop  chan struct{}
	done  chan struct{}
}

// reads holds the copies ReadHistory hands to its callbacks.
var reads = sync.Pool{New: func() any { return new(readCopy) }}

type readCopy struct {
	entries []history.Entry
	data    []byte
}

func (h *memoryHistory) init(c MemoryConfig) {
	h.store = history.NewStore(c.HistoryMaxBytes, c.Epochs)
	h.every = c.SweepEvery
	h.stop, h.done = make(chan struct{}), make(chan struct{})
}

// sweepWork bounds one sweep step under the lock, so that publications
// never wait long behind it.
const sweepWork = 256

func (h *memoryHistory) sweep() {
	defer close(h.done)
	t := time.NewTicker(h.every)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		for more := true; more; {
			h.mu.Lock()
			more = h.store.Sweep(nanotime(), sweepWork)
			h.mu.Unlock()
		}
	}
}

func (h *memoryHistory) close() {
	started := true
	h.start.Do(func() { started = false })
	close(h.stop)
	if started {
		<-h.done
	}
}

// PublishHistory appends data to channel's stream and delivers it at its
// position (Deliver, without offset, when the sink is not a StreamSink)
// under the channel's stripe lock, so offsets and delivery order agree;
// done gets the position. Options that are not On publish like Publish,
// at the zero Position.
func (b *MemoryBroker) PublishHistory(channel string, data []byte, opt history.Options, done func(history.Position, error)) {
	sink := b.sink.Load()
	if sink == nil || b.closed.Load() {
		done(history.Position{}, ErrUnavailable)
		return
	}
	if !opt.On() {
		b.Publish(channel, data, func(err error) { done(history.Position{}, err) })
		return
	}
	h := &b.history
	h.start.Do(func() { go h.sweep() })
	sh := &b.stripes[ChannelHash(channel)%numStripes]
	sh.mu.Lock()
	h.mu.Lock()
	pos := h.store.Append(channel, data, opt, nanotime())
	h.mu.Unlock()
	if sink.stream != nil {
		sink.stream.DeliverAt(channel, pos, data)
	} else {
		sink.Deliver(channel, data)
	}
	sh.mu.Unlock()
	done(pos, nil)
}

// ReadHistory calls done inside the call, with copies of the entries (in
// buffers reused once done returns), and not under any lock of the broker:
// done may call it again. Every publication up to the position read was
// delivered to the sink before done runs.
func (b *MemoryBroker) ReadHistory(channel string, since uint64, limit int, done func(history.Read, error)) {
	if b.closed.Load() {
		done(history.Read{}, ErrUnavailable)
		return
	}
	c := reads.Get().(*readCopy)
	h := &b.history
	sh := &b.stripes[ChannelHash(channel)%numStripes]
	sh.mu.Lock() // no delivery on channel is half done
	h.mu.Lock()
	r := h.store.Read(channel, since, limit, nanotime(), c.entries)
	c.entries, c.data = copyEntries(r.Entries, c.data[:0])
	h.mu.Unlock()
	sh.mu.Unlock()
	done(history.Read{Pos: r.Pos, Entries: c.entries}, nil)
	clear(c.entries) // the pool keeps no data alive through them
	reads.Put(c)
}

// copyEntries points es at copies of their data, appended to buf.
func copyEntries(es []history.Entry, buf []byte) ([]history.Entry, []byte) {
	for _, e := range es {
		buf = append(buf, e.Data...)
	}
	off := 0
	for i := range es {
		n := len(es[i].Data)
		es[i].Data = buf[off : off+n : off+n]
		off += n
	}
	return es, buf
}
