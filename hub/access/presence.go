package access

import (
	"fmt"
	"time"
)

// Presence is a namespace's presence options (PROTOCOL.md extensions,
// "Presence"). The zero value tracks nothing.
type Presence struct {
	// On tracks the members of the namespace's channels: the connections
	// whose subscribe was confirmed, with their users and info claims.
	On bool
	// JoinLeave pushes {"op":"join"} and {"op":"leave"} to the channel's
	// subscribers (needs On).
	JoinLeave bool
	// Linger delays a leave that long; a join of the same user on the same
	// channel within it cancels both (a reconnect). 0: leaves go out at once.
	Linger time.Duration
	// For is who may query the members (op presence, presence_stats).
	For Audience
}

// MaxLinger bounds Presence.Linger: a pending leave is held memory.
const MaxLinger = time.Minute

// Audience is who may query a presence channel. Its zero value,
// QuerySubscribers, is the default: a channel's members are its
// subscribers' business.
type Audience uint8

// The audiences, in the configuration's words subscribers, authenticated,
// anyone, nobody.
const (
	QuerySubscribers   Audience = iota // connections subscribed to the channel
	QueryAuthenticated                 // connections with a valid token
	QueryAnyone                        // every connection
	QueryNobody                        // only the admin API
	numAudiences
)

// Audiences are the names presence_for accepts, in Audience order.
var Audiences = []string{"subscribers", "authenticated", "anyone", "nobody"}

// audienceModes maps an audience onto the mode that decides it.
var audienceModes = [numAudiences]Mode{Subscribers, Authenticated, Anyone, Nobody}

// String is the audience's name in the configuration file.
func (a Audience) String() string {
	if a < numAudiences {
		return Audiences[a]
	}
	return fmt.Sprintf("Audience(%d)", a)
}

// ParseAudience reads a namespace's presence_for option.
func ParseAudience(s string) (Audience, error) {
	for i, name := range Audiences {
		if name == s {
			return Audience(i), nil
		}
	}
	return 0, fmt.Errorf("%q is not one of %v", s, Audiences)
}

// CanQueryPresence decides a client's presence query of channel, whose
// namespace has presence (the caller checks that first); subscribed says
// whether the connection holds a subscription to it. The channels claim
// is a ceiling here too, and a user-limited channel's members are its
// users' business only, whatever the audience.
func (p *Policy) CanQueryPresence(id *Identity, channel string, subscribed bool) Verdict {
	ns, v := p.scope(id, channel)
	if v != Allowed {
		return v
	}
	a := ns.Presence.For
	if a >= numAudiences {
		return ClientsForbidden
	}
	if users, ok := UserLimited(channel); ok && a != QueryNobody {
		switch {
		case id == nil:
			return NeedsToken
		case !limitedTo(users, id.User):
			return NotUser
		}
	}
	return allows(audienceModes[a], id, channel, subscribed)
}

// check reports presence options that contradict each other.
func (o *Presence) check() error {
	switch {
	case o.JoinLeave && !o.On:
		return fmt.Errorf("join_leave needs presence")
	case o.Linger != 0 && !o.JoinLeave:
		return fmt.Errorf("join_leave_linger needs join_leave")
	case o.Linger < 0 || o.Linger > MaxLinger:
		return fmt.Errorf("join_leave_linger must be from 0 to %v, got %v", MaxLinger, o.Linger)
	case o.For >= numAudiences:
		return fmt.Errorf("presence_for %v is not one of %v", o.For, Audiences)
	}
	return nil
}
