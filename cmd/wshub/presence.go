package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wshub/wshub/hub"
	"github.com/wshub/wshub/hub/access"
	"github.com/wshub/wshub/hub/presence"
	"github.com/wshub/wshub/redis"
)

// Presence settings: a namespace's presence, join_leave, join_leave_linger
// and presence_for keys, and the store the hub keeps members in.

// checkPresence checks a namespace's presence options, naming the key.
func (c *config) checkPresence(key string, o namespaceOptions) []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{c.name(key + "." + field)}, args...)...))
	}
	switch {
	case o.JoinLeave && !o.Presence:
		bad("join_leave", "needs presence: true")
	case o.JoinLeaveLinger != 0 && !o.JoinLeave:
		bad("join_leave_linger", "needs join_leave: true")
	case o.JoinLeaveLinger < 0 || o.JoinLeaveLinger > access.MaxLinger:
		bad("join_leave_linger", "must be from 0 (leaves at once) to %v, got %v", access.MaxLinger, o.JoinLeaveLinger)
	}
	if o.PresenceFor != "" {
		if _, err := access.ParseAudience(o.PresenceFor); err != nil {
			bad("presence_for", "%q is not one of %s", o.PresenceFor, strings.Join(access.Audiences, ", "))
		} else if !o.Presence {
			bad("presence_for", "needs presence: true")
		}
	}
	if o.Presence && c.redisEnabled() && !c.Registry {
		bad("presence", "needs the connection registry with Redis (redis.registry: its heartbeats fence a dead instance's members)")
	}
	return errs
}

// presence reads a namespace's presence options (checked by checkPresence).
func (o namespaceOptions) presence() (access.Presence, error) {
	p := access.Presence{On: o.Presence, JoinLeave: o.JoinLeave, Linger: o.JoinLeaveLinger}
	if o.PresenceFor != "" {
		a, err := access.ParseAudience(o.PresenceFor)
		if err != nil {
			return access.Presence{}, fmt.Errorf("presence_for: %w", err)
		}
		p.For = a
	}
	return p, nil
}

// presenceStore is the store for the hub's presence namespaces: the
// in-process one with the memory broker, the Redis one (on the registry,
// whose heartbeats fence a dead instance's members) with Redis.
func presenceStore(policy *access.Policy, reg *redis.Registry, redisOn bool, ttl time.Duration) (hub.PresenceStore, error) {
	switch {
	case !policy.HasPresence():
		return nil, nil
	case reg != nil:
		return redis.NewPresence(reg, redis.PresenceConfig{TTL: ttl}) // the registry's: one knob for what a crash leaves
	case redisOn:
		return nil, errors.New("presence with Redis needs the connection registry")
	}
	return presence.NewMemoryStore(), nil
}
