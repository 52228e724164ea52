package eventloop

import (
	"bytes"
	"time"

	"github.com/wshub/wshub/wsproto"
)

// Upgrader is an optional Handler interface. OnUpgrade sees every /ws upgrade
// request the parser accepted, before the 101 answer, and returns 0 to accept
// it or the HTTP status to refuse it with: the client then gets
// wsproto.RejectResponse(status) and its TCP connection is closed, and the
// handler hears nothing more of it. It runs on the loop's goroutine; it may
// call SetData and SetExpiry. req and its strings are valid only during the
// call (they view a buffer the loop reuses): copy what is kept.
//
// An accepted upgrade is always followed by OnOpen and, later, OnClose, even
// when the 101 cannot be written: what OnUpgrade reserves, OnClose releases.
type Upgrader interface {
	OnUpgrade(c *Conn, req *wsproto.Handshake) int
}

// UpgradeLater is what OnUpgrade returns to decide later, off the loop (a
// slow token verification): the connection waits, reading nothing, until
// Resume gives the answer or the handshake timeout closes it.
const UpgradeLater = -1

// Resume answers an upgrade OnUpgrade deferred (UpgradeLater) with what
// decide returns: 0 accepts it, as if OnUpgrade had, anything else refuses
// it with that HTTP status. It must run on the connection's loop (post it
// there). decide is called only if the connection still waits (not timed
// out, not closed), so what it reserves is always released by OnClose.
// Input that arrived while it waited is read at once.
func (c *Conn) Resume(decide func() int) {
	l := c.loop
	hs := l.deferred[c]
	if hs == nil {
		return
	}
	delete(l.deferred, c)
	if c.state != stHandshake {
		return // timed out or closed meanwhile
	}
	l.enter()
	defer l.leave()
	if code := decide(); code != 0 {
		c.refuseUpgrade(code)
		return
	}
	if !c.open(hs) {
		return
	}
	if c.gc.InboundBuffered() > 0 {
		c.onTraffic()
	}
}

// awaitResume keeps an accepted request's result until Resume, with a copy of
// its response: the original is in the loop's hsOut, which the next upgrade
// reuses.
func (c *Conn) awaitResume(hs wsproto.Handshake) {
	l := c.loop
	hs.Response = bytes.Clone(hs.Response)
	hs.Query, hs.Authorization, hs.Path = "", "", ""
	if l.deferred == nil {
		l.deferred = make(map[*Conn]*wsproto.Handshake)
	}
	l.deferred[c] = &hs
}

// refuseUpgrade answers the request with code and closes the connection.
func (c *Conn) refuseUpgrade(code int) {
	c.loop.srv.metrics.refusedUpgrade(code)
	_, _ = c.gc.Write(wsproto.RejectResponse(code))
	c.kill()
}

// Expirer is an optional Handler interface. OnExpire is called on the loop's
// goroutine once a connection's expiry (SetExpiry) has passed; the
// connection is then closed with 1008 "expired" unless OnExpire closed it
// itself (with its own reason) or moved the expiry.
type Expirer interface {
	OnExpire(c *Conn)
}

// SetExpiry makes the connection expire at t, to the second (the zero time:
// never). It replaces any earlier expiry; an expiry already past fires at the
// loop's next tick. It costs no timer: the connection's one wheel timer is
// armed at the sooner of its next ping and its expiry.
func (c *Conn) SetExpiry(t time.Time) {
	s := c.loop.srv
	switch {
	case t.IsZero():
		c.expires = 0
	default:
		// Whole seconds since the epoch, rounded up, at least 1 (0 = none):
		// 136 years of uptime fit.
		sec := (t.Sub(s.epoch) + time.Second - 1) / time.Second
		c.expires = uint32(min(max(sec, 1), 1<<32-1))
	}
	if c.state != stOpen {
		return // the upgrade arms the timer; a closing connection ignores it
	}
	next := s.nowTick() + s.pingTicks
	switch {
	case c.flags&fAwaitPong != 0:
		next = s.nowTick() + s.pongTicks
	case s.pingTicks <= 0:
		next = 0
	}
	c.loop.armOpen(c, next)
}

// expiryTick is the tick at which c expires, 0 when it does not.
func (c *Conn) expiryTick() int64 {
	if c.expires == 0 {
		return 0
	}
	s := c.loop.srv
	return int64((time.Duration(c.expires)*time.Second + s.tickDur - 1) / s.tickDur)
}

// armOpen arms an open connection's timer at tick at (0: no ping due), or at
// its expiry when that comes first.
func (l *Loop) armOpen(c *Conn, at int64) {
	if e := c.expiryTick(); e != 0 && (at == 0 || e < at) {
		at = e
	}
	if at == 0 {
		l.wheel.cancel(&c.tm)
		return
	}
	l.wheel.schedule(&c.tm, at)
}

// expire handles an open connection whose expiry has passed.
func (l *Loop) expire(c *Conn) {
	l.stats.expired.Add(1)
	exp := c.expires
	if e, ok := l.srv.handler.(Expirer); ok {
		e.OnExpire(c)
	}
	if c.state == stOpen && c.expires == exp {
		c.Close(wsproto.ClosePolicy, "expired")
	}
}
