package loadtest

import (
	"fmt"
	"time"
)

// maxLinger is the longest join_leave_linger the gateway takes.
const maxLinger = time.Minute

func (c *Config) presenceDefaults() {
	if c.Namespace == "" {
		c.Namespace = DefaultPresenceNamespace
	}
	if c.Users <= 0 {
		c.Users = c.Conns
	}
	if c.Watchers == 0 {
		c.Watchers = c.Channels
	}
	if c.QueryRate == 0 {
		c.QueryRate = 10
	}
	if c.AwayMin == 0 && c.AwayMax == 0 {
		c.AwayMin, c.AwayMax = 100*time.Millisecond, time.Second
	}
}

// validatePresence checks presence-churn's own settings.
func (c *Config) validatePresence() error {
	switch {
	case c.Conns <= 0:
		return fmt.Errorf("presence-churn needs --conns > 0 (members)")
	case c.JWTSecret == "":
		// Members are told apart, and reconnect as themselves, by their
		// token's sub: an anonymous member has no user to count.
		return fmt.Errorf("presence-churn needs --jwt-secret: members are users by their token's sub (and the gateway needs the same --jwt-secret)")
	case c.Users > c.Conns:
		return fmt.Errorf("--users %d > --conns %d: every user needs a member", c.Users, c.Conns)
	case c.Watchers < 0 || c.Watchers > 0 && c.Watchers < c.Channels:
		return fmt.Errorf("--watchers %d: want 0 (no join/leave accounting) or at least --channels %d, one per channel", c.Watchers, c.Channels)
	case c.ChurnRate < 0 || c.QueryRate <= 0:
		return fmt.Errorf("--churn-rate must not be negative, --query-rate must be positive")
	case c.Linger < 0 || c.Linger > maxLinger:
		return fmt.Errorf("--linger %v: want 0 to %v, the namespace's join_leave_linger", c.Linger, maxLinger)
	case c.AwayMin < 0 || c.AwayMax < c.AwayMin:
		return fmt.Errorf("--away %v-%v: want 0 <= MIN <= MAX", c.AwayMin, c.AwayMax)
	case c.Workers > 1:
		// The accounting matches every watcher's pushes against every
		// churn, on one clock.
		return fmt.Errorf("presence-churn runs in one process (--procs 1)")
	}
	return nil
}

// presenceUsers is how many users (tokens) the run has: members' users,
// one per watcher, one for the querier.
func (c *Config) presenceUsers() int { return c.Users + c.Watchers + 1 }

// presenceExpected is, per channel, the members (connections) and the
// distinct users presence should count at rest: members and watchers
// (watchers are subscribers too; the querier is not).
func (c *Config) presenceExpected() (conns, users []int64) {
	conns, users = make([]int64, c.Channels), make([]int64, c.Channels)
	seen := make(map[int64]bool)
	for i := 0; i < c.Conns; i++ {
		ch := i % c.Channels
		conns[ch]++
		if k := int64(ch)<<32 | int64(i%c.Users); !seen[k] {
			seen[k] = true
			users[ch]++
		}
	}
	for j := 0; j < c.Watchers; j++ {
		conns[j%c.Channels]++
		users[j%c.Channels]++
	}
	return conns, users
}
