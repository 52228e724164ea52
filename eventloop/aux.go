package eventloop

import "unsafe"

// A connection holds the buffer of an upgrade request that came in pieces
// only before the upgrade, and frames to send only after it, so the two
// share Conn.aux: one word less in every idle connection. fRequestHeld says
// which it is; these four are the only readers and writers of aux.

// ring is the connection's send ring, nil when none (or before the upgrade).
func (c *Conn) ring() *ring {
	if c.flags&fRequestHeld != 0 {
		return nil
	}
	return (*ring)(c.aux)
}

// setRing stores the send ring (nil: none).
func (c *Conn) setRing(r *ring) {
	if c.flags&fRequestHeld != 0 {
		panic("eventloop: a send ring for a connection still holding its upgrade request")
	}
	c.aux = unsafe.Pointer(r)
}

// handshakeBuf is the upgrade request held across reads, nil when none.
func (c *Conn) handshakeBuf() *handshakeState {
	if c.flags&fRequestHeld == 0 {
		return nil
	}
	return (*handshakeState)(c.aux)
}

// setHandshakeBuf stores the held upgrade request (nil: none).
func (c *Conn) setHandshakeBuf(h *handshakeState) {
	if h == nil {
		c.flags &^= fRequestHeld
		c.aux = nil
		return
	}
	c.flags |= fRequestHeld
	c.aux = unsafe.Pointer(h)
}
