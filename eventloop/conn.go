package eventloop

import (
	"sync/atomic"
	"unsafe"

	"github.com/panjf2000/gnet/v2"

	"github.com/wshub/wshub/wsproto"
)

// connState is where a connection is in its life.
type connState uint8

const (
	stHandshake connState = iota // waiting for the upgrade request
	stOpen                       // upgraded: messages flow both ways
	stClosing                    // our close frame is queued or sent; waiting for the peer's
	stDead                       // socket close requested; gnet's OnClose is pending
	stClosed                     // gnet closed the socket: the gnet.Conn must not be touched
)

// pathKind is the endpoint a connection upgraded on.
type pathKind uint8

const (
	pathNone pathKind = iota
	pathWS
	pathEcho
)

// Connection flags.
const (
	fDirty        uint16 = 1 << iota // on the loop's dirty list (frames to write)
	fBacklog                         // on the loop's backlog (socket backed up, retried as the loop runs)
	fOpened                          // Handler.OnOpen was called: OnClose is owed
	fAwaitPong                       // a ping is out; the timer is the pong deadline
	fPeerClosed                      // the peer's close frame arrived
	fCloseSent                       // our close frame was handed to gnet
	fCloseNow                        // close the socket once our close frame is out (protocol error)
	fReadOff                         // ignore further input: the decoder failed or the peer closed
	fSlow                            // dropped as a slow consumer: write 1008, close the socket
	fHolding                         // holds partial input since Conn.since (partial.go)
	fListed                          // on the loop's holders list
	fIPCounted                       // counted in Server.ips for its source: released at OnClose
	fCompressed                      // may be sent compressed messages (Compressed)
	fRequestHeld                     // aux is a *handshakeState, not a *ring (aux.go)
	fWantWritable                    // NotifyWritable: report the queue's going out (writable.go)
)

// nextID numbers connections for the life of the process.
var nextID atomic.Uint64

// Conn is one client connection. It implements hub.Conn. Apart from ID and
// Loop, its methods may only be called on the goroutine of the loop that
// owns it (inside Handler callbacks and functions posted to its Loop).
//
// A Conn is kept small: an idle connection holds no ring and no decoder
// buffer, only this struct and gnet's.
type Conn struct {
	tm   timer // first field: connOf converts a *timer back to its Conn
	gc   gnet.Conn
	loop *Loop
	id   uint64
	data any
	// aux is the upgrade request's buffer before the upgrade (an upgrade
	// request that did not come in one read) and the send ring after it:
	// never both, so they share a word (aux.go).
	aux     unsafe.Pointer
	dec     wsproto.Decoder // holds a buffer only mid-fragmented-message
	idx     uint32          // position in loop.conns
	held    uint32          // bytes of partial input charged to Server.partial
	since   uint32          // tick at which the partial input held started
	expires uint32          // second since Server.epoch at which the connection expires (SetExpiry); 0 = never
	state   connState
	path    pathKind
	flags   uint16
	checked uint32 // payload bytes of the incomplete text frame at the front of the input known valid UTF-8 (partialutf8.go)
}

// connOf returns the Conn whose tm field is t.
func connOf(t *timer) *Conn { return (*Conn)(unsafe.Pointer(t)) }

// connOf requires tm at offset 0; this fails to compile otherwise.
var _ = [1]struct{}{}[unsafe.Offsetof(Conn{}.tm)]

// ID is unique per process for the life of the process.
func (c *Conn) ID() uint64 { return c.id }

// Loop is the index of the owning loop in Server.Loops.
func (c *Conn) Loop() int { return c.loop.idx }

// Compressed reports whether the connection may be sent compressed messages
// (RSV1 set, deflated with a 32 KiB window and no context, as
// wsproto.Handshake.Compressed says): it negotiated permessage-deflate and
// did not limit the server's window. Its own compressed messages are
// inflated whenever it negotiated, whatever this says.
func (c *Conn) Compressed() bool { return c.flags&fCompressed != 0 }

// Data returns what SetData stored (the hub's per-connection state).
func (c *Conn) Data() any { return c.data }

// SetData stores v with the connection.
func (c *Conn) SetData(v any) { c.data = v }

// RemoteAddr is the peer's address ("" once closed).
func (c *Conn) RemoteAddr() string {
	if c.state == stClosed {
		return ""
	}
	if a := c.gc.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

// Send queues a shared frame, taking its own reference; the loop writes it
// at the end of the current batch. It returns false when the connection is
// not open (closing, closed) or was just dropped as a slow consumer: its
// queue was full while its socket was backed up.
func (c *Conn) Send(f *wsproto.Frame) bool {
	if c.state != stOpen {
		return false
	}
	l := c.loop
	if !c.push(f, l.sendQueue) {
		// Full. A connection whose socket takes data is written now rather
		// than dropped: one busy batch may queue more than SendQueue frames
		// for a healthy client.
		if c.gc.OutboundBuffered() == 0 {
			l.flushConn(c)
		}
		if c.state != stOpen || !c.push(f, l.sendQueue) {
			l.dropSlow(c)
			return false
		}
	}
	f.Retain()
	return true
}

// Close queues a close frame after what is already queued; once it is out,
// the socket is closed when the peer answers or after Config.CloseTimeout.
// It does nothing unless the connection is open.
func (c *Conn) Close(code uint16, reason string) {
	if c.state != stOpen {
		return
	}
	c.startClose(wsproto.NewCloseFrame(code, reason))
}

// startClose moves an open connection to closing with f (whose reference it
// takes) as its last frame.
func (c *Conn) startClose(f *wsproto.Frame) {
	l := c.loop
	c.state = stClosing
	c.flags &^= fAwaitPong
	l.wheel.schedule(&c.tm, l.srv.nowTick()+l.srv.closeTicks)
	// The ring refuses data beyond sendQueue but always has room for this.
	c.push(f, l.sendQueue+1)
}

// fail closes the connection for a protocol violation: close frame with
// code, no more input, socket closed as soon as the frame is out.
func (c *Conn) fail(code uint16, reason string) {
	if c.state != stOpen {
		c.kill()
		return
	}
	c.flags |= fReadOff | fCloseNow
	c.startClose(wsproto.NewCloseFrame(code, reason))
}

// push appends f to the ring unless limit frames are already queued, and
// marks the connection for the next flush. It takes no reference.
func (c *Conn) push(f *wsproto.Frame, limit int) bool {
	l := c.loop
	r := c.ring()
	switch {
	case r == nil:
		r = l.rings.get(0)
		c.setRing(r)
	case int(r.n) >= limit:
		return false
	case int(r.n) == len(r.buf):
		var ok bool
		if r, ok = l.rings.grow(r); !ok {
			return false
		}
		c.setRing(r)
	}
	r.push(f)
	l.queued++
	l.markDirty(c)
	return true
}

// discardQueue releases every queued frame and gives the ring back.
func (c *Conn) discardQueue() {
	r := c.ring()
	if r == nil {
		return
	}
	c.loop.queued -= int(r.n)
	for r.n > 0 {
		r.pop().Release()
	}
	c.loop.rings.put(r)
	c.setRing(nil)
}

// kill drops the connection without a close frame: handshake timeout, pong
// timeout, close wait over, or the close handshake is complete.
func (c *Conn) kill() {
	if c.state >= stDead {
		return
	}
	c.state = stDead
	c.loop.wheel.cancel(&c.tm)
	c.discardQueue()
	c.closeSocket()
}

// closeSocket asks gnet to close the socket: inside the connection's own
// OnTraffic by returning gnet.Close (at once), elsewhere with gnet's
// asynchronous Close.
func (c *Conn) closeSocket() {
	if c.loop.inTraffic != c {
		_ = c.gc.Close()
	}
}
