package eventloop

import (
	"github.com/wshub/wshub/wsproto"
)

// Partial input: what a client can make the gateway hold without finishing
// anything — an unfinished upgrade request, an incomplete frame (it waits in
// gnet's inbound buffer until whole) or an unfinished fragmented message (in
// the decoder's reassembly buffer). Three limits bound it:
//
//   - Server.partial counts the bytes every connection holds, against
//     Config.MaxPartialBytes; the connection whose input would pass it is
//     closed (1008; an upgrade is dropped) and the others keep theirs.
//   - Config.MaxFragments caps one message's frames (the decoder, 1009).
//   - Config.MessageTimeout bounds how long a message may stay unfinished
//     once started (1008): each loop keeps the connections holding partial
//     input in a list that its tick sweeps, so there is no timer per
//     connection and the sweep costs only the holders.
//
// A share is what the held bytes cost in memory, not their count: gnet's
// ring buffer rounds up to a power of two and the decoder's buffer grows by
// appending, so 60,000 parked bytes take 64 KiB or more. Each connection's
// share (Conn.held) is recomputed after every read and given back when it
// closes; Conn.held and the holders list belong to the
// connection's loop, Server.partial is shared (atomic).

// reasonMessageTimeout is the close reason for a message over MessageTimeout
// (the budget's is wsproto.ErrNoRoom's, the fragment cap's the decoder's).
const reasonMessageTimeout = "message not completed in time"

// handshakeState is a connection's upgrade request in progress, kept only
// when the request did not arrive in one read. Its bytes are moved out of
// gnet's buffer: a Peek(-1) of a non-empty gnet buffer copies all of it at
// every read, which would make a trickled request quadratic again. The
// buffer grows with the request (append doubles it, up to the size cap):
// sized for the cap up front, 15,000 slowloris connections sending 200
// bytes each cost 75 MB more RSS.
type handshakeState struct {
	buf []byte // the request so far, at most the handshake size cap
	cur wsproto.HandshakeCursor
}

// maxSpareHandshakes bounds each loop's free list of handshake states.
const maxSpareHandshakes = 64

// getHandshake returns a reset handshake state from the loop's free list.
func (l *Loop) getHandshake() *handshakeState {
	if n := len(l.spareHS); n > 0 {
		h := l.spareHS[n-1]
		l.spareHS[n-1] = nil
		l.spareHS = l.spareHS[:n-1]
		return h
	}
	return &handshakeState{}
}

// putHandshake gives c's handshake state back, if it has one.
func (c *Conn) putHandshake() {
	h := c.handshakeBuf()
	if h == nil {
		return
	}
	c.setHandshakeBuf(nil)
	l := c.loop
	if len(l.spareHS) < maxSpareHandshakes {
		h.buf = h.buf[:0]
		h.cur.Reset()
		l.spareHS = append(l.spareHS, h)
	}
}

// parseUpgrade runs the handshake parser over what has arrived. A request
// complete in the first read is parsed in place. Otherwise its bytes move
// into the handshake buffer and the cursor resumes where the previous read stopped, so a
// request trickled a byte at a time costs linear work. used is the number of
// bytes of buf that were the request (Done) or that moved into the handshake buffer
// (NeedMore).
func (c *Conn) parseUpgrade(buf []byte) (hs wsproto.Handshake, used int) {
	s := c.loop.srv
	h := c.handshakeBuf()
	if h == nil {
		var cur wsproto.HandshakeCursor
		hs = cur.ParseInto(buf, &s.hsCfg, c.loop.hsOut)
		if hs.Status != wsproto.HandshakeNeedMore {
			return hs, hs.Consumed
		}
		// NeedMore means buf is under the size cap.
		h = c.loop.getHandshake()
		h.buf = append(h.buf, buf...)
		h.cur = cur
		c.setHandshakeBuf(h)
		return hs, len(buf)
	}
	prev := len(h.buf)
	take := min(len(buf), s.maxRequest-prev)
	h.buf = append(h.buf, buf[:take]...)
	hs = h.cur.ParseInto(h.buf, &s.hsCfg, c.loop.hsOut)
	if hs.Status == wsproto.HandshakeNeedMore {
		return hs, take
	}
	// The request's strings do not alias the buffer: it can go back now.
	c.putHandshake()
	return hs, max(hs.Consumed-prev, 0)
}

// account recomputes what c holds after a read and charges the difference to
// the server's count; completed says whether a message (or the upgrade)
// finished in this read, so that what is held now started in it.
func (c *Conn) account(completed bool) {
	if c.state >= stDead {
		return // closing: OnClose gives the share back
	}
	held := bufferSize(c.gc.InboundBuffered()) + c.dec.Held()
	if h := c.handshakeBuf(); h != nil {
		held += cap(h.buf)
	}
	l := c.loop
	s := l.srv
	delta := int64(held) - int64(c.held)
	if delta > 0 && c.flags&fReadOff != 0 {
		return // closing for its input: what it holds goes with it, uncharged
	}
	if delta > 0 {
		if s.partial.Add(delta) > s.maxPartial {
			s.partial.Add(-delta)
			l.stats.limitCloses[limitBudget].Add(1)
			c.fail(wsproto.ErrNoRoom.Code, wsproto.ErrNoRoom.Reason)
			// Drop the input now: left unread, gnet would copy it into a
			// buffer of its own for a connection that is going away.
			_, _ = c.gc.Discard(-1)
			return
		}
	} else if delta < 0 {
		s.partial.Add(delta)
	}
	c.held = uint32(held)
	switch {
	case held == 0:
		c.flags &^= fHolding
	case c.state == stHandshake:
		// The handshake timeout already bounds an upgrade in progress.
	case c.flags&fHolding == 0 || completed:
		c.flags |= fHolding
		c.since = uint32(s.nowTick())
		if c.flags&fListed == 0 {
			c.flags |= fListed
			l.holders = append(l.holders, c)
		}
	}
}

// bufferSize is the memory gnet's inbound ring buffer takes for n unread
// bytes: it allocates powers of two, 1 KiB at least (pkg/buffer/ring).
func bufferSize(n int) int {
	if n == 0 {
		return 0
	}
	size := 1 << 10
	for size < n {
		size <<= 1
	}
	return size
}

// releasePartial gives c's share back (the connection closed).
func (c *Conn) releasePartial() {
	if c.held > 0 {
		c.loop.srv.partial.Add(-int64(c.held))
		c.held = 0
	}
	c.flags &^= fHolding
	c.putHandshake()
}

// sweepHolders closes the connections whose message has stayed unfinished
// for MessageTimeout and forgets those that hold nothing any more.
func (l *Loop) sweepHolders(now int64) {
	limit := uint32(l.srv.msgTicks)
	kept := l.holders[:0]
	for _, c := range l.holders {
		switch {
		case c.state >= stDead || c.flags&fHolding == 0:
			c.flags &^= fListed
		case uint32(now)-c.since >= limit:
			c.flags &^= fListed
			l.stats.limitCloses[limitTimeout].Add(1)
			c.fail(wsproto.ClosePolicy, reasonMessageTimeout)
		default:
			kept = append(kept, c)
		}
	}
	clear(l.holders[len(kept):])
	l.holders = kept
}
