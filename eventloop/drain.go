package eventloop

// Pacing for bulk senders (the hub's history replay): a sender queues what
// Room allows, asks NotifyDrained, and continues in Drainer.OnDrained once
// the connection's queue has gone out, so that a burst it chose to send is
// never taken for a slow consumer.

// Drainer is an optional Handler interface. OnDrained is called on the
// loop's goroutine, after a flush, for a connection that asked with
// NotifyDrained and whose queue has since been handed to the socket.
type Drainer interface {
	OnDrained(c *Conn)
}

// Room is how many more frames Send accepts now without the slow-consumer
// rule (0 when the connection is not open).
func (c *Conn) Room() int {
	if c.state != stOpen {
		return 0
	}
	if r := c.ring(); r != nil {
		return max(c.loop.sendQueue-int(r.n), 0)
	}
	return c.loop.sendQueue
}

// NotifyDrained asks for one OnDrained call once the connection's queued
// frames have gone out (at once after the next flush when none are queued).
func (c *Conn) NotifyDrained() {
	if c.state != stOpen || c.flags&fWantDrain != 0 {
		return
	}
	c.flags |= fWantDrain
	c.loop.markDirty(c) // a flush finds the empty queue and reports it
}

// drained records that c's queue went out; the calls are made by
// callDrained, outside the flush that found it.
func (l *Loop) drained(c *Conn) {
	if c.flags&fWantDrain != 0 {
		c.flags &^= fWantDrain
		l.drainedConns = append(l.drainedConns, c)
	}
}

// callDrained makes the OnDrained calls that flushes recorded; it reports
// whether it made any (they may have queued frames to flush).
func (l *Loop) callDrained() bool {
	if len(l.drainedConns) == 0 {
		return false
	}
	d, ok := l.srv.handler.(Drainer)
	for i := 0; i < len(l.drainedConns); i++ {
		c := l.drainedConns[i]
		l.drainedConns[i] = nil
		if ok && c.state == stOpen {
			d.OnDrained(c)
		}
	}
	l.drainedConns = l.drainedConns[:0]
	return true
}
