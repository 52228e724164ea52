package hub

import (
	"sync"

	"github.com/wshub/wshub/hub/history"
	"github.com/wshub/wshub/wsproto"
)

// replayCache shares a history channel's replay frames between the reads
// that are out at the same time, so that a reconnect storm frames (and,
// for compressed clients, compresses) each publication once, not once per
// recovering subscriber. It holds frames only while a read is out, and at
// most what the channel's history holds: it empties when the last read
// ends. Guarded by mu; reads come from broker goroutines.
type replayCache struct {
	mu     sync.Mutex
	users  int                       // reads between join and leave
	epoch  string                    // the frames' stream epoch
	frames map[uint64]*wsproto.Frame // by offset; one reference each
}

// join counts a read that may take frames.
func (c *replayCache) join() {
	c.mu.Lock()
	c.users++
	c.mu.Unlock()
}

// leave ends a read; the last one empties the cache.
func (c *replayCache) leave() {
	c.mu.Lock()
	if c.users--; c.users == 0 {
		c.clear()
	}
	c.mu.Unlock()
}

// frame returns e's message frame with a reference for the caller, framing
// it only if no read of this burst did.
func (c *replayCache) frame(channel, epoch string, e history.Entry) *wsproto.Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch != c.epoch {
		c.clear()
		c.epoch = epoch
	}
	f := c.frames[e.Offset]
	if f == nil {
		f = buildMessage(channel, history.Position{Offset: e.Offset, Epoch: epoch}, e.Data)
		if c.frames == nil {
			c.frames = make(map[uint64]*wsproto.Frame)
		}
		c.frames[e.Offset] = f
	}
	f.Retain()
	return f
}

// clear drops the cache's references; caller holds mu.
func (c *replayCache) clear() {
	for off, f := range c.frames {
		f.Release()
		delete(c.frames, off)
	}
	c.frames = nil
}
