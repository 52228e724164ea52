package access

import "strings"

// Identity is who a connection is, from its token; a nil *Identity is an
// anonymous connection. It is two words, so that a gateway can keep one in
// every connection: the grants are shared (see Grants).
type Identity struct {
	User   string  // the token's sub
	Grants *Grants // the token's channels claim; nil when it has none
}

// Grants is a token's channels claim: names and patterns, a ceiling on what
// the connection may use (an empty list allows nothing). Many tokens carry the
// same claim, so one Grants is meant to be shared by all their connections;
// it is never modified once built.
type Grants struct {
	Patterns []string
}

// Verdict is the answer to "may this connection do that on this channel".
type Verdict uint8

// The verdicts; every one but Allowed is a refusal with its own reason.
const (
	Allowed          Verdict = iota
	UnknownNamespace         // the channel's namespace is not configured and unknown ones are refused
	NeedsToken               // the namespace requires an authenticated connection
	NotListed                // the token's channels claim does not cover the channel
	NotUser                  // a user-limited channel of other users
	ClientsForbidden         // the namespace's mode is nobody
	NotSubscribed            // publishing requires a subscription to the channel
	numVerdicts
)

// Reasons are the verdicts' texts for error messages, indexed by Verdict.
var Reasons = [numVerdicts]string{
	Allowed:          "allowed",
	UnknownNamespace: "unknown namespace",
	NeedsToken:       "this channel requires an authenticated connection",
	NotListed:        "the token's channels claim does not allow this channel",
	NotUser:          "this channel is limited to other users",
	ClientsForbidden: "clients may not do this on this channel's namespace",
	NotSubscribed:    "only subscribers may publish on this channel",
}

// UserLimited splits a user-limited channel (`dm:#alice,bob`: '#' followed
// by comma-separated user ids at its end) into its user list; ok is false
// for any other channel.
func UserLimited(channel string) (users string, ok bool) {
	i := strings.LastIndexByte(channel, '#')
	if i < 0 || i == len(channel)-1 {
		return "", false
	}
	return channel[i+1:], true
}

// limitedTo reports whether user is one of the comma-separated users.
func limitedTo(users, user string) bool {
	for users != "" {
		var u string
		u, users, _ = strings.Cut(users, ",")
		if u == user {
			return true
		}
	}
	return false
}

// ceiling applies the token's channels claim, which only ever takes away.
func ceiling(id *Identity, channel string) bool {
	return id == nil || id.Grants == nil || MatchAny(id.Grants.Patterns, channel)
}

// allows applies a namespace mode to a connection.
func allows(m Mode, id *Identity, channel string, subscribed bool) Verdict {
	switch m {
	case Anyone:
		return Allowed
	case Authenticated:
		if id != nil {
			return Allowed
		}
		return NeedsToken
	case Token:
		if id == nil {
			return NeedsToken
		}
		if id.Grants != nil && MatchAny(id.Grants.Patterns, channel) {
			return Allowed
		}
		return NotListed
	case Subscribers:
		if subscribed {
			return Allowed
		}
		return NotSubscribed
	}
	return ClientsForbidden
}

// scope finds channel's namespace and applies the token's channels claim:
// what every decision starts with. The verdict is Allowed when both pass.
func (p *Policy) scope(id *Identity, channel string) (*Namespace, Verdict) {
	ns := p.Lookup(channel)
	switch {
	case ns == nil:
		return nil, UnknownNamespace
	case !ceiling(id, channel):
		return nil, NotListed
	}
	return ns, Allowed
}

// CanSubscribe decides a client's subscribe to channel (a valid name).
// A user-limited channel is open to its users only, whatever the namespace's
// subscribe mode says; the channels claim applies to it as to any other.
func (p *Policy) CanSubscribe(id *Identity, channel string) Verdict {
	ns, v := p.scope(id, channel)
	if v != Allowed {
		return v
	}
	if users, ok := UserLimited(channel); ok {
		if id == nil {
			return NeedsToken
		}
		if !limitedTo(users, id.User) {
			return NotUser
		}
		return Allowed
	}
	return allows(ns.Subscribe, id, channel, false)
}

// CanPublish decides a client's publish on channel; subscribed says whether
// the connection is subscribed to it.
func (p *Policy) CanPublish(id *Identity, channel string, subscribed bool) Verdict {
	ns, v := p.scope(id, channel)
	if v != Allowed {
		return v
	}
	return allows(ns.Publish, id, channel, subscribed)
}
