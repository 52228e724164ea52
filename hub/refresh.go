package hub

import (
	"github.com/wshub/wshub/hub/auth"
	"github.com/wshub/wshub/wsproto"
)

// Token expiry and refresh (a PROTOCOL.md extension): a connection is closed
// with 1008 "token expired" once its token's exp (plus the leeway) passes,
// unless it sent {"op":"refresh","token":"..."} with a newer token for the
// same sub before then.

var (
	errNoAuth      = &Error{400, "refresh: this gateway does not authenticate connections"}
	errRefreshAnon = &Error{403, "refresh: an anonymous connection has no token to refresh (reconnect with one)"}
	errRefreshSub  = &Error{403, "refresh: the new token is for another sub"}
)

// closeExpired is the close reason of a connection whose token expired.
const closeExpired = "token expired"

// OnExpire closes c when its token has expired (eventloop.Expirer, through
// the caller's glue; the loops count expiries). Runs on c's loop.
func (h *Hub) OnExpire(c Conn) {
	c.Close(wsproto.ClosePolicy, closeExpired)
}

// refresh replaces the connection's token: same sub, new channels claim, new
// expiry. A bad token is an error and changes nothing: the old expiry stands.
// Subscriptions the new claim no longer covers are kept; the claim applies to
// the next subscribe and publish.
func (h *Hub) refresh(l *loopState, cs *connData, cmd *command) {
	a := &h.cfg.Auth
	switch {
	case a.Verifier == nil:
		l.replyError(cs.conn, cmd.hasID, cmd.id, errNoAuth)
		return
	case cs.ident.User == "":
		l.replyError(cs.conn, cmd.hasID, cmd.id, errRefreshAnon)
		return
	}
	claims, err := a.Verifier.Verify(string(cmd.token))
	if err != nil {
		l.replyError(cs.conn, cmd.hasID, cmd.id, &Error{401, "refresh: token refused: " + auth.ReasonOf(err)})
		return
	}
	if claims.Sub != cs.ident.User {
		l.replyError(cs.conn, cmd.hasID, cmd.id, errRefreshSub)
		return
	}
	cs.ident.Grants = h.grants.get(claims.Channels, claims.HasChannels)
	h.setInfo(cs, claims.Info) // for later joins; memberships held keep theirs
	if claims.Expires.IsZero() {
		cs.conn.SetExpiry(claims.Expires)
	} else {
		cs.conn.SetExpiry(claims.Expires.Add(a.Leeway))
	}
	h.stats.refreshes.Add(1)
	if cmd.hasID {
		l.reply(cs.conn, appendOK(l.scratch[:0], cmd.id, false))
	}
}
