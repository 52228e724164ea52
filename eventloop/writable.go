package eventloop

// Pacing for bulk senders (the hub's history replay): a sender queues what
// Room allows, asks NotifyWritable, and continues in Writable.OnWritable once
// the connection's queue has gone out, so that a burst it chose to send is
// never taken for a slow consumer.

// Writable is an optional Handler interface. OnWritable is called on the
// loop's goroutine, after a flush, for a connection that asked with
// NotifyWritable and whose queue has since been handed to the socket.
type Writable interface {
	OnWritable(c *Conn)
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

// NotifyWritable asks for one OnWritable call once the connection's queued
// frames have gone out (at once after the next flush when none are queued).
func (c *Conn) NotifyWritable() {
	if c.state != stOpen || c.flags&fWantWritable != 0 {
		return
	}
	c.flags |= fWantWritable
	c.loop.markDirty(c) // a flush finds the empty queue and reports it
}

// writable records that c's queue went out; the calls are made by
// callWritable, outside the flush that found it.
func (l *Loop) writable(c *Conn) {
	if c.flags&fWantWritable != 0 {
		c.flags &^= fWantWritable
		l.writableConns = append(l.writableConns, c)
	}
}

// callWritable makes the OnWritable calls that flushes recorded; it reports
// whether it made any (they may have queued frames to flush).
func (l *Loop) callWritable() bool {
	if len(l.writableConns) == 0 {
		return false
	}
	w, ok := l.srv.handler.(Writable)
	for i := 0; i < len(l.writableConns); i++ {
		c := l.writableConns[i]
		l.writableConns[i] = nil
		if ok && c.state == stOpen {
			w.OnWritable(c)
		}
	}
	l.writableConns = l.writableConns[:0]
	return true
}
