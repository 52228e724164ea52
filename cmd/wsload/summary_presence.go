package main

import (
	"fmt"

	"github.com/wshub/wshub/loadtest"
)

// printPresence adds presence-churn's rows: the churns and how the
// watchers heard of them, the queries and whether the counts settled.
func printPresence(row func(k, format string, a ...any), s *loadtest.PresenceResult) {
	row("members", "%d (%d users) over %d channels, %d watchers; at rest %v conns, %v users per channel", s.Members, s.Users, s.Channels, s.Watchers, s.ExpConns, s.ExpUsers)
	row("churns", "%d members dropped and back (%d drops skipped: the user was away or back within the linger)", s.Drops, s.Skipped)
	if a := s.Accounting; a != nil {
		row("linger", "%.0f ms expected: away shorter, no push; longer, a leave then a join", s.LingerMs)
		row("suppressed", "%d churns silent, %d leaked (%d pushes)", a.Suppressed, a.Leaked, a.LeakedPushes)
		row("announced", "%d churns with one leave then one join at every watcher, %d wrong, %d borderline (away within %.0f ms of the linger)", a.Announced, a.Wrong, a.Borderline, s.TolMs)
		row("pushes", "%d to watchers (%.3f per churn and watcher), %d stray, %d unfinished churns; %d to members", a.Pushes, a.PushesPerChurn, a.Stray, a.Unfinished, s.MemberPushes)
	}
	q := s.Queries
	row("queries", "%d sent, %d answered, %d unanswered, errors %v; %d above the counts at rest", q.Sent, q.Answers, q.Unanswered, q.Errors, q.Implausible)
	row("stats", "%s", pcts(s.Stats))
	row("presence", "%s; up to %d members, %d truncated", pcts(s.List), q.MembersMax, q.Truncated)
	row("settled", "%s before the churn, %s after it; last answered %v conns, %v users", settled(s.SettleStartMs), settled(s.SettleEndMs), q.LastConns, q.LastUsers)
}

func settled(ms float64) string {
	if ms < 0 {
		return "NOT settled"
	}
	return fmt.Sprintf("in %.0f ms", ms)
}
