package eventloop

import (
	"errors"
	"math"

	"github.com/gobwas/ws"

	"github.com/wshub/wshub/wsproto"
)

// maxFrameHeader is the longest client frame header: 64-bit length and
// mask key.
const maxFrameHeader = 14

// onTraffic consumes what the peer sent: the upgrade request, then frames.
// Input is parsed straight from gnet's buffer and only whole requests and
// frames are discarded; an incomplete frame stays in gnet's buffer, where
// the decoder's limit check on the header keeps it under MaxMessage+14.
// The pongs owed for the read's pings go out at the end, with what the read
// queued (see answerPings).
func (c *Conn) onTraffic() {
	completed := c.readFrames()
	c.loop.answerPings(c)
	c.account(completed)
}

// readFrames reports whether a whole message (or the upgrade request) was
// completed, so that what stays parked is known to have started in this read.
func (c *Conn) readFrames() (completed bool) {
	if c.awaitFrame() {
		return false
	}
	buf, _ := c.gc.Peek(-1)
	c.loop.scanned += len(buf)
	off := 0
	if c.state == stHandshake {
		if c.loop.deferred[c] != nil {
			return false // its request awaits Resume; what follows waits in gnet's buffer
		}
		n, ok := c.handshake(buf)
		if !ok {
			if n > 0 && c.state == stHandshake {
				_, _ = c.gc.Discard(n) // moved into the handshake buffer
			}
			return false
		}
		off, completed = n, true
	}
	// The decoder may grow its buffer by what the partial-input budget has
	// left, so that a message over it is refused before it is copied; the
	// count itself is settled once the read is done (account).
	room := int(c.loop.srv.maxPartial - c.loop.srv.partial.Load())
	// Loop until Next asks for more, even at the end of buf: that last call
	// is what returns a reassembled message's pooled buffer.
	for (c.state == stOpen || c.state == stClosing) && c.flags&fReadOff == 0 {
		ev, n, err := c.dec.NextWithin(buf[off:], room)
		if err != nil {
			c.failDecode(err)
			break
		}
		if n == 0 {
			// An incomplete frame, already peeked: its text is checked
			// now, not when it is whole.
			c.checkPartial(buf[off:])
			break
		}
		off += n
		c.checked = 0
		if ev.Kind == wsproto.EventText || ev.Kind == wsproto.EventBinary {
			completed = true
		}
		c.handle(&ev)
		if c.state == stClosed {
			return completed // a write failed and gnet closed the connection under us
		}
	}
	if c.state >= stDead || c.flags&fReadOff != 0 {
		off = len(buf) // nothing more will be read from this peer
	}
	if off > 0 { // Discard(0) would drop everything
		_, _ = c.gc.Discard(off)
	}
	return completed
}

// failDecode closes the connection for what the decoder refused.
func (c *Conn) failDecode(err error) {
	var ce *wsproto.CloseError
	if !errors.As(err, &ce) {
		ce = &wsproto.CloseError{Code: wsproto.CloseProtocolError, Reason: "protocol error"}
	}
	switch err {
	case wsproto.ErrTooManyFragments:
		c.loop.stats.limitCloses[limitFragments].Add(1)
	case wsproto.ErrNoRoom:
		c.loop.stats.limitCloses[limitBudget].Add(1)
	}
	c.dec.Reset() // nothing more is decoded: its buffer goes back now
	c.fail(ce.Code, ce.Reason)
}

// awaitFrame reports whether the frame at the front of the input is still
// incomplete, judging from its header alone. gnet's Peek(-1) copies all
// buffered input whenever earlier bytes wait in its buffer, so peeking a
// large frame at every small read would cost quadratic copying; the header
// takes a peek of at most 14 bytes. A header the decoder would refuse is
// left to Next, which reports it. An incomplete text frame is peeked whole
// only as often as checking its UTF-8 early is worth it (peekPartial).
func (c *Conn) awaitFrame() bool {
	if c.state != stOpen && c.state != stClosing || c.flags&fReadOff != 0 {
		return false
	}
	in := c.gc.InboundBuffered()
	hdr, _ := c.gc.Peek(min(in, maxFrameHeader))
	size, err := c.dec.FrameSize(hdr)
	if err != nil || size <= in {
		return false
	}
	if c.peekPartial(hdr[0], in) {
		buf, _ := c.gc.Peek(in)
		c.loop.scanned += len(buf)
		c.checkPartial(buf)
		if c.flags&fReadOff != 0 {
			_, _ = c.gc.Discard(-1) // nothing more will be read from this peer
		}
	}
	return true
}

// eagerPartial is the input below which an incomplete text frame is peeked
// and checked at every read: copying that much costs less than the read.
const eagerPartial = 4 << 10

// peekPartial reports whether the incomplete frame at the front of the in
// buffered bytes, whose first byte is b0, is text to check now. Checking
// needs a peek of everything buffered, which gnet copies, so past
// eagerPartial it waits until the input is twice the text known valid: the
// peeks of a frame add up to at most twice its size (on top of the one Next
// needs once it is whole), and invalid text is caught by the time the input
// is twice as long as the valid text before it.
func (c *Conn) peekPartial(b0 byte, in int) bool {
	return c.dec.PartialText(b0) && (in <= eagerPartial || in >= 2*int(c.checked))
}

// checkPartial checks the text of the incomplete frame at the front of buf
// as far as it has arrived (wsproto.Decoder.CheckPartial), from where the
// previous read left off, and fails the connection (1007) as soon as it
// cannot become valid.
func (c *Conn) checkPartial(buf []byte) {
	if uint64(len(buf)) > math.MaxUint32 {
		return // beyond what c.checked counts: Next checks it whole
	}
	checked, err := c.dec.CheckPartial(buf, int(c.checked))
	if err != nil {
		c.failDecode(err)
		return
	}
	c.checked = uint32(checked)
}

// handshake parses the upgrade request from buf, the input not yet
// consumed. Once the connection is open it returns the number of bytes of buf
// the request took and true. Otherwise it returns false and the number of
// bytes of buf to discard: an incomplete request is moved into the
// connection's handshake buffer (see parseUpgrade); a refused one is closed.
func (c *Conn) handshake(buf []byte) (int, bool) {
	l := c.loop
	s := l.srv
	hs, used := c.parseUpgrade(buf)
	switch {
	case hs.Status == wsproto.HandshakeNeedMore:
		return used, false
	case hs.Status == wsproto.HandshakeReject:
		s.metrics.handshakeFailure(hs.Reason)
		_, _ = c.gc.Write(hs.Response)
		c.kill() // gnet writes what is still buffered before it closes
		return 0, false
	case s.memory.overloaded.Load():
		// Near the memory limit: a new client is told to come back later
		// rather than the process growing until the kernel kills it.
		l.stats.refused[refusedMemory].Add(1)
		_, _ = c.gc.Write(wsproto.RejectResponse(503))
		c.kill()
		return 0, false
	}
	if !c.admitIP() { // per-source limits: 429 (iplimit.go)
		return 0, false
	}
	c.path = pathWS
	if hs.Path == "/echo" {
		c.path = pathEcho
	} else if s.upgrader != nil {
		switch code := s.upgrader.OnUpgrade(c, &hs); code {
		case 0:
		case UpgradeLater:
			c.awaitResume(hs) // upgrade.go: Resume finishes it
			return used, false
		default:
			c.refuseUpgrade(code)
			return 0, false
		}
	}
	return used, c.open(&hs)
}

// open completes an accepted upgrade: the connection is open, OnOpen has
// run and the 101 is written. It reports false when the connection did not
// survive it.
func (c *Conn) open(hs *wsproto.Handshake) bool {
	l := c.loop
	s := l.srv
	c.state = stOpen
	c.dec.Init(s.cfg.MaxMessage)
	c.dec.SetMaxFragments(s.cfg.MaxFragments)
	c.dec.AllowCompressed(hs.Deflate)
	if hs.Compressed {
		c.flags |= fCompressed
	}
	var ping int64
	if s.pingTicks > 0 {
		ping = s.nowTick() + s.firstPing(c.id)
	}
	l.armOpen(c, ping)
	if c.path == pathWS {
		// OnOpen comes before the 101 is written, so that an accepted
		// upgrade is always opened and closed (the write may fail, and gnet
		// then closes the connection under us); what OnOpen queues is
		// written after the 101, at the end of the batch.
		c.flags |= fOpened
		s.handler.OnOpen(c)
		if c.state != stOpen {
			// OnOpen closed it: the 101 still goes first, then the close frame.
			_, _ = c.gc.Write(hs.Response)
			return c.state != stClosed
		}
	}
	_, _ = c.gc.Write(hs.Response)
	return c.state != stClosed
}

// handle acts on one decoded frame.
func (c *Conn) handle(ev *wsproto.Event) {
	l := c.loop
	switch ev.Kind {
	case wsproto.EventText, wsproto.EventBinary:
		if c.state != stOpen {
			return // closing: messages are no longer delivered
		}
		switch {
		case c.path == pathEcho:
			op := ws.OpText
			if ev.Kind == wsproto.EventBinary {
				op = ws.OpBinary
			}
			f := wsproto.NewFrame(op, ev.Payload)
			c.Send(f)
			f.Release()
		case ev.Kind == wsproto.EventText:
			l.srv.handler.OnText(c, ev.Payload)
		default:
			c.fail(wsproto.CloseUnsupportedData, "binary messages are not accepted")
		}
	case wsproto.EventPing:
		if c.state == stOpen { // nothing may follow our close frame
			l.queuePong(ev.Payload)
		}
	case wsproto.EventPong:
		if c.state == stOpen && c.flags&fAwaitPong != 0 {
			c.flags &^= fAwaitPong
			l.armOpen(c, l.srv.nowTick()+l.srv.pingTicks)
		}
	case wsproto.EventClose:
		c.flags |= fPeerClosed | fReadOff
		switch c.state {
		case stOpen:
			// Echo the peer's code; the socket closes once the echo is out.
			code := ev.CloseCode
			if code == wsproto.CloseNoStatus {
				code = wsproto.CloseNormal
			}
			c.startClose(wsproto.NewCloseFrame(code, ""))
		case stClosing:
			if c.flags&fCloseSent != 0 {
				c.kill() // the close handshake is complete
			}
		}
	}
}

// maxPongFrame is the largest pong frame: 2-byte header, 125-byte payload.
const maxPongFrame = 2 + 125

// queuePong owes the connection being read a pong carrying p. Every ping
// gets its own pong, up to maxPongs a read; past that the last pong is
// overwritten by each new ping's, so it answers the latest (RFC 6455 §5.5.3
// lets a pong answer only the most recent ping). A client packing 100,000
// pings into one segment thus costs at most maxPongs frames in a buffer
// sized for them when the loop was made: no allocation, no growth.
func (l *Loop) queuePong(p []byte) {
	if l.npongs == l.maxPongs {
		l.pongs = l.pongs[:l.lastPong]
	} else {
		l.npongs++
	}
	l.lastPong = len(l.pongs)
	l.pongs = wsproto.AppendFrame(l.pongs, ws.OpPong, p)
}

// answerPings writes the pongs owed for c's read, in the order of their
// pings, in one write: ahead of the frames the read queued, in the same
// writev when there are some (RFC 6455 allows control frames between
// messages, and every queued frame is a whole message). None is sent once
// our close frame is out: nothing may follow it.
func (l *Loop) answerPings(c *Conn) {
	if l.npongs == 0 {
		return
	}
	if c.state < stDead && c.flags&fCloseSent == 0 {
		l.lead, l.leadPongs = l.pongs, l.npongs
		if r := c.ring(); r != nil && r.n > 0 && c.gc.OutboundBuffered() == 0 {
			l.flushConn(c) // its first writeBatch takes the lead
		}
		if l.lead != nil && c.state < stDead {
			// Nothing queued, or the socket is backed up: the pongs go
			// alone (gnet buffers them behind what it holds, still
			// ahead of the ring's frames).
			l.writeLead(c)
		}
	}
	l.lead, l.leadPongs = nil, 0
	l.pongs, l.npongs = l.pongs[:0], 0
}
