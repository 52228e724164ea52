package eventloop

import (
	"github.com/panjf2000/gnet/v2"

	"github.com/wshub/wshub/wsproto"
)

// The runner of the per-source limits (iplimit.go): the loops consult
// Server.ips at the upgrade and at OnClose, gnet's ticker sweeps it
// (Server's OnTick), and Server.ipClock gives them the time.

// admitIP applies the per-source limits to an upgrade request the parser
// accepted: over one, the answer is 429 with Retry-After and the connection
// is closed. Free when no per-IP limit is set. A counted connection is
// released at OnClose whatever closes it, a later refusal of the upgrade
// included.
func (c *Conn) admitIP() bool {
	if c.loop.srv.ips == nil {
		return true
	}
	return c.admitIPLimited()
}

func (c *Conn) admitIPLimited() bool {
	s := c.loop.srv
	k, ok := remoteKey(c.gc.RemoteAddr())
	if !ok {
		return true // no IP to limit (a Unix socket)
	}
	v, retry := s.ips.admit(k, s.ipClock())
	if v == ipAdmitted {
		if s.ips.counts() {
			c.flags |= fIPCounted
		}
		return true
	}
	reason := refusedIPConns
	switch v {
	case ipOverRate:
		reason = refusedIPRate
	case ipTableFull:
		reason = refusedIPTable
	}
	c.loop.stats.refused[reason].Add(1)
	_, _ = c.gc.Write(wsproto.TooManyRequests(retry))
	c.kill()
	return false
}

// releaseIP gives back the count admitIP took, once; on OnClose, where
// gnet still holds the peer's address.
func (c *Conn) releaseIP(gc gnet.Conn) {
	if c.flags&fIPCounted == 0 {
		return
	}
	c.flags &^= fIPCounted
	s := c.loop.srv
	if k, ok := remoteKey(gc.RemoteAddr()); ok {
		s.ips.release(k, s.ipClock())
	}
}
