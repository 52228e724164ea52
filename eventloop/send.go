package eventloop

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/wshub/wshub/wsproto"
)

// flushDirty writes every connection that got frames since the last flush.
// It runs at the end of every posted batch, traffic event and close, so the
// frames a batch queued for one connection leave in one writev.
func (l *Loop) flushDirty() {
	if l.flushing {
		return // the outer call continues over what was appended
	}
	l.flushing = true
	// Indexing, not ranging: a close during a write may append.
	for i := 0; i < len(l.dirty); i++ {
		c := l.dirty[i]
		l.dirty[i] = nil
		c.flags &^= fDirty
		l.flushConn(c)
	}
	l.dirty = l.dirty[:0]
	l.flushing = false
	l.stats.queued.Store(int64(l.queued))
}

// flushConn hands c's queued frames to gnet unless its socket is backed up,
// and finishes what a close or a slow-consumer drop left to do.
func (l *Loop) flushConn(c *Conn) {
	if c.state == stClosed {
		return
	}
	if c.flags&fSlow != 0 {
		c.flags &^= fSlow
		if c.flags&fCloseSent == 0 { // RFC 6455 §5.5.1: one close frame only
			l.scratch = wsproto.AppendCloseFrame(l.scratch[:0], wsproto.ClosePolicy, "slow consumer")
			_, _ = c.gc.Write(l.scratch) // best effort: gnet tries it once more as it closes
		}
		if c.state != stClosed {
			c.closeSocket()
		}
		return
	}
	for r := c.ring(); r != nil && r.n > 0; r = c.ring() {
		if c.gc.OutboundBuffered() > 0 {
			// The socket is backed up: keep the frames in the ring, where
			// they are bounded, and retry once gnet has drained it.
			l.addBacklog(c)
			return
		}
		l.writeBatch(c)
		if c.state == stClosed {
			return // the write failed and gnet closed the connection
		}
		if r := c.ring(); c.state == stClosing && r != nil && r.n == 0 {
			c.flags |= fCloseSent // the close frame, always last, just went out
		}
		if c.gc.OutboundBuffered() > l.maxPending {
			l.dropSlow(c)
			return
		}
	}
	if r := c.ring(); r != nil {
		l.rings.put(r)
		c.setRing(nil)
	}
	l.writable(c)
	if c.state == stClosing {
		c.flags |= fCloseSent // the ring is empty: so is the close frame out
		switch {
		case c.flags&fPeerClosed != 0:
			c.kill()
		case c.flags&fCloseNow != 0:
			c.flags &^= fCloseNow
			l.halfClose(c)
		}
	}
}

// writeBatch writes the frames at the front of c's ring with one writev: at
// most maxIOV of them and, past the first, no more than maxPending bytes, so
// that what gnet has to buffer from one call stays under the ceiling. The
// pongs of answerPings, if any, lead.
func (l *Loop) writeBatch(c *Conn) {
	r := c.ring()
	iov, held := l.iov[:0], l.held[:0]
	size, pongs, compressed, saved := 0, 0, 0, 0
	if l.lead != nil {
		iov = append(iov, l.lead)
		size, pongs = len(l.lead), l.leadPongs
		l.lead = nil
	}
	for r.n > 0 && len(iov) < maxIOV {
		b, s := l.wire(c, r.front()) // compressed or plain (compression.go)
		if len(iov) > 0 && size+len(b) > l.maxPending {
			break
		}
		size += len(b)
		if s != 0 {
			compressed++
			saved += s
		}
		held = append(held, r.pop())
		iov = append(iov, b)
	}
	if compressed != 0 {
		l.z.frames.Add(uint64(compressed))
		l.z.saved.Add(uint64(saved))
	}
	l.queued -= len(held)
	l.writev(c, iov)
	for i, f := range held {
		f.Release()
		held[i] = nil
	}
	clear(iov)
	l.stats.framesWritten.Add(uint64(len(held) + pongs))
	l.stats.writevCalls.Add(1)
}

// writeLead writes the pongs of answerPings on their own, counted like a
// batch. A peer that makes gnet buffer too much this way is a slow consumer.
func (l *Loop) writeLead(c *Conn) {
	b, n := l.lead, l.leadPongs
	l.lead = nil
	_, _ = c.gc.Write(b)
	l.stats.framesWritten.Add(uint64(n))
	l.stats.writevCalls.Add(1)
	if c.state != stClosed && c.gc.OutboundBuffered() > l.maxPending {
		l.dropSlow(c)
	}
}

// writev writes iov to c's socket. gnet's Writev does the same, but
// x/sys/unix allocates the iovec array of every call with more than 8
// slices; so while gnet has nothing buffered for c, the loop makes the
// syscall with its own array and hands gnet only what the socket did not
// take. gnet then buffers it (EAGAIN) or, on a real error, closes the
// connection (OnClose runs before Writev returns).
func (l *Loop) writev(c *Conn, iov [][]byte) {
	if len(iov) <= 8 || c.gc.OutboundBuffered() > 0 {
		_, _ = c.gc.Writev(iov)
		return
	}
	vecs := l.iovecs[:len(iov)]
	total := 0
	for i, b := range iov {
		vecs[i].Base = &b[0]
		vecs[i].SetLen(len(b))
		total += len(b)
	}
	r, _, errno := unix.Syscall(unix.SYS_WRITEV, uintptr(c.gc.Fd()), uintptr(unsafe.Pointer(&vecs[0])), uintptr(len(vecs)))
	clear(vecs) // no pointers into frame buffers outlive the call
	n := int(r)
	if errno != 0 {
		n = 0
	}
	if n == total {
		return
	}
	for n >= len(iov[0]) {
		n -= len(iov[0])
		iov = iov[1:]
	}
	iov[0] = iov[0][n:]
	_, _ = c.gc.Writev(iov)
}

// writeControl writes a one-off control frame straight to the socket, ahead
// of queued data (RFC 6455 allows control frames between messages). A peer
// that makes gnet buffer too much this way is a slow consumer too.
func (l *Loop) writeControl(c *Conn, frame []byte) {
	l.scratch = frame
	_, _ = c.gc.Write(frame)
	if c.state != stClosed && c.gc.OutboundBuffered() > l.maxPending {
		l.dropSlow(c)
	}
}

// addBacklog remembers a connection whose frames wait for its socket.
func (l *Loop) addBacklog(c *Conn) {
	if c.flags&fBacklog == 0 {
		c.flags |= fBacklog
		l.backlog = append(l.backlog, c)
	}
}

// dropSlow drops a connection that cannot keep up. Its frames are released
// at once; the close 1008 and the socket close happen at the next flush.
// Nobody else waits for it.
func (l *Loop) dropSlow(c *Conn) {
	if c.state >= stDead {
		return
	}
	l.stats.slowDrops.Add(1)
	c.state = stDead
	c.flags |= fSlow
	l.wheel.cancel(&c.tm)
	c.discardQueue()
	l.markDirty(c)
}

// halfClose ends a connection that broke the protocol once our close frame
// is on the wire. Closing the socket with the peer's unread input still in
// the kernel would send a TCP reset that can destroy the close frame before
// the peer reads it, so the write side is shut and input is drained
// (fReadOff) until the peer closes or the close timeout kills it.
func (l *Loop) halfClose(c *Conn) {
	if c.gc.OutboundBuffered() > 0 || unix.Shutdown(c.gc.Fd(), unix.SHUT_WR) != nil {
		c.kill()
	}
}
