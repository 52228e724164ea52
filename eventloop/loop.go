package eventloop

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/wshub/wshub/wsproto"
)

// maxIOV is the most slices one writev may carry (UIO_MAXIOV): gnet closes
// the connection on the EINVAL that more would get.
const maxIOV = 1024

// Loop is one event loop: a goroutine of gnet's that owns a set of
// connections. It implements hub.Poster.
//
// The Loop objects exist from New; each is bound to one of gnet's loops the
// first time a connection opens there. Posts made before that are kept
// until it happens.
type Loop struct {
	idx int
	srv *Server

	// Post's queue: a mutex and two slices swapped per batch.
	mu  sync.Mutex
	q   []func()
	gel gnet.EventLoop // bound gnet loop, nil until bound; under mu
	ref atomic.Pointer[gnetRef]

	_ [64]byte // keep the loop's own state off the posters' cache line

	// Loop goroutine only.
	spare   []func()
	conns   []*Conn // every connection on this loop (shutdown drain)
	dirty   []*Conn // connections with frames to write this batch
	backlog []*Conn // connections whose socket is backed up
	// writableConns are connections whose queue went out after NotifyWritable,
	// owed an OnWritable call (writable.go).
	writableConns []*Conn
	flushing      bool
	depth         int     // nesting of our code on the stack (see enter)
	closed        []*Conn // closed connections whose Handler.OnClose is owed
	inTraffic     *Conn   // connection whose OnTraffic is running
	// hsOut is where accepted upgrades' responses are built (ParseInto):
	// one buffer for the loop, so an upgrade allocates nothing; what a
	// Handshake holds is only valid until the loop's next upgrade.
	hsOut     []byte
	deferred  map[*Conn]*wsproto.Handshake // upgrades awaiting Resume (upgrade.go); bounded by the handler's queue
	wheel     wheel
	rings     ringPool
	iov       [][]byte
	iovecs    []unix.Iovec
	held      []*wsproto.Frame
	scratch   []byte  // one-off control frames (ping, 1008)
	pongs     []byte  // pong frames owed to the connection being read (queuePong), sized for maxPongs
	npongs    int     // frames in pongs
	lastPong  int     // offset in pongs of its last frame
	maxPongs  int     // Config.MaxPongsPerRead
	lead      []byte  // bytes the next writeBatch sends ahead of the ring's frames (answerPings)
	leadPongs int     // pong frames in lead
	queued    int     // frames in this loop's rings
	scanned   int     // input bytes peeked for decoding (kept linear, see readFrames)
	holders   []*Conn // connections that may hold partial input (fListed; partial.go)
	spareHS   []*handshakeState

	sendQueue  int
	maxPending int

	tickQueued atomic.Bool
	tickFn     func() // cached method values: posting them does not allocate
	drainFn    func()
	fireFn     func(*timer)
	stats      loopStats
	z          loopDeflate // outbound permessage-deflate (compression.go)
}

// gnetRef wraps the bound gnet loop for lock-free lookup in OnOpen.
type gnetRef struct{ el gnet.EventLoop }

// loopStats are the hot-path counters, read by the metrics collector.
type loopStats struct {
	framesWritten, writevCalls, slowDrops, pongTimeouts, batches atomic.Uint64
	expired                                                      atomic.Uint64 // connections past their SetExpiry
	refused                                                      [numRefused]atomic.Uint64
	limitCloses                                                  [numLimits]atomic.Uint64
	queued                                                       atomic.Int64 // published copy of Loop.queued
}

func newLoop(s *Server, idx int) *Loop {
	l := &Loop{
		idx:        idx,
		srv:        s,
		sendQueue:  s.cfg.SendQueue,
		maxPending: s.cfg.MaxPending,
		iov:        make([][]byte, 0, maxIOV),
		iovecs:     make([]unix.Iovec, maxIOV),
		held:       make([]*wsproto.Frame, 0, maxIOV),
		pongs:      make([]byte, 0, s.cfg.MaxPongsPerRead*maxPongFrame),
		maxPongs:   s.cfg.MaxPongsPerRead,
		// A query and Authorization never exceed the request they come in.
		hsOut: make([]byte, 0, wsproto.MaxResponseRoom+s.maxRequest),
	}
	l.wheel.init(1024, s.nowTick())
	l.rings.init(s.cfg.SendQueue + 1)
	l.tickFn = l.tick
	l.drainFn = l.drain
	l.fireFn = l.fire
	return l
}

// Post runs fn on the loop's goroutine. It is safe from any goroutine and
// never blocks. Posts are batched: only the post that finds the queue empty
// wakes the loop, which then runs everything queued and writes every
// connection that got frames. When fn is a cached func value, Post itself
// does not allocate; the wake-up costs one small allocation inside gnet per
// batch. Posts to a stopped server are dropped.
func (l *Loop) Post(fn func()) {
	l.mu.Lock()
	l.q = append(l.q, fn)
	wake := len(l.q) == 1 && l.gel != nil
	gel := l.gel
	l.mu.Unlock()
	if wake {
		l.wake(gel)
	}
}

// loopRunner is the gnet.Runnable that runs a batch: a conversion of the
// Loop pointer, so that it needs no allocation of ours and stays off Loop's
// exported API.
type loopRunner Loop

func (r *loopRunner) Run(context.Context) error {
	(*Loop)(r).runBatch()
	return nil
}

func (l *Loop) wake(gel gnet.EventLoop) {
	if err := gel.Execute(context.Background(), (*loopRunner)(l)); err != nil {
		// The engine is stopping and nothing will run the queue: drop it,
		// so that posters that keep going do not grow it forever.
		l.mu.Lock()
		clear(l.q)
		l.q = l.q[:0]
		l.mu.Unlock()
	}
}

// bind attaches the loop to gnet's loop el; on el's goroutine.
func (l *Loop) bind(el gnet.EventLoop) {
	l.mu.Lock()
	l.gel = el
	l.ref.Store(&gnetRef{el})
	pending := len(l.q) > 0
	l.mu.Unlock()
	if pending {
		l.wake(el)
	}
}

func (l *Loop) bound() bool { return l.ref.Load() != nil }

// enter and leave bracket every entry from gnet into the loop's code
// (traffic, a posted batch, a close). gnet closes a connection synchronously
// when a write fails, which can happen deep inside our code, even inside a
// Handler's fan-out calling Send; so while we are on the stack, a close only
// records that Handler.OnClose is owed, and the outermost leave makes the
// calls, once every frame queued so far has been written.
func (l *Loop) enter() { l.depth++ }

func (l *Loop) leave() {
	if l.depth > 1 {
		l.depth--
		return
	}
	l.retryBacklog()
	for {
		l.flushDirty()
		if l.callWritable() {
			continue // their frames want a flush too
		}
		if len(l.closed) == 0 {
			break
		}
		c := l.closed[len(l.closed)-1]
		l.closed[len(l.closed)-1] = nil
		l.closed = l.closed[:len(l.closed)-1]
		l.srv.handler.OnClose(c) // may queue frames for others: flushed next round
	}
	l.depth--
}

// runBatch runs the posted functions, then writes what they queued.
func (l *Loop) runBatch() {
	l.mu.Lock()
	batch := l.q
	l.q = l.spare[:0]
	l.mu.Unlock()
	l.stats.batches.Add(1)
	l.enter()
	for i, fn := range batch {
		batch[i] = nil
		fn()
	}
	l.spare = batch[:0]
	l.leave()
}

// tick advances the timer wheel; posted from gnet's ticker goroutine. Like
// every batch, it ends with a retry of the backlog.
func (l *Loop) tick() {
	l.tickQueued.Store(false)
	now := l.srv.nowTick()
	l.wheel.advance(now, l.fireFn)
	l.sweepHolders(now)
}

// retryBacklog queues for this flush the backed-up connections whose socket
// gnet has drained since (or that closed). gnet drains on its own writable
// events, which do not call us, so this runs at the end of every batch,
// traffic event and close: the frames leave at the loop's next run, not the
// next tick. It costs O(backlog).
func (l *Loop) retryBacklog() {
	kept := l.backlog[:0]
	for _, c := range l.backlog {
		if c.state != stClosed && c.gc.OutboundBuffered() > 0 {
			kept = append(kept, c)
			continue
		}
		c.flags &^= fBacklog
		l.markDirty(c)
	}
	clear(l.backlog[len(kept):])
	l.backlog = kept
}

// fire handles an expired connection timer.
func (l *Loop) fire(t *timer) {
	c := connOf(t)
	s := l.srv
	switch c.state {
	case stHandshake:
		s.metrics.handshakeFailure("timeout")
		c.kill()
	case stOpen:
		if e := c.expiryTick(); e != 0 && e <= s.nowTick() {
			l.expire(c)
			return
		}
		if c.flags&fAwaitPong != 0 {
			l.stats.pongTimeouts.Add(1)
			c.kill()
			return
		}
		c.flags |= fAwaitPong
		l.armOpen(c, s.nowTick()+s.pongTicks)
		l.writeControl(c, wsproto.AppendFrame(l.scratch[:0], ws.OpPing, nil))
	case stClosing:
		c.kill()
	}
}

// drain starts the graceful shutdown of every connection on the loop:
// unfinished upgrades are dropped, open connections get what is queued and
// then close 1001, sharing one frame.
func (l *Loop) drain() {
	var bye *wsproto.Frame
	for _, c := range l.conns {
		switch c.state {
		case stHandshake:
			c.kill()
		case stOpen:
			if bye == nil {
				bye = wsproto.NewCloseFrame(wsproto.CloseGoingAway, "going away")
			}
			bye.Retain()
			c.startClose(bye)
		}
	}
	if bye != nil {
		bye.Release()
	}
}

func (l *Loop) add(c *Conn) {
	c.idx = uint32(len(l.conns))
	l.conns = append(l.conns, c)
}

func (l *Loop) remove(c *Conn) {
	last := len(l.conns) - 1
	moved := l.conns[last]
	l.conns[c.idx] = moved
	moved.idx = c.idx
	l.conns[last] = nil
	l.conns = l.conns[:last]
}

func (l *Loop) markDirty(c *Conn) {
	if c.flags&fDirty == 0 {
		c.flags |= fDirty
		l.dirty = append(l.dirty, c)
	}
}
