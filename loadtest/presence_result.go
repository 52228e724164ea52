package loadtest

// PresenceResult is presence-churn's own figures (the Result's Presence).
type PresenceResult struct {
	Members  int     `json:"members"`
	Users    int     `json:"users"` // distinct users among the members
	Watchers int     `json:"watchers"`
	Channels int     `json:"channels"`
	LingerMs float64 `json:"linger_ms"`    // the join_leave_linger the accounting expected
	TolMs    float64 `json:"tolerance_ms"` // churns away within this of the linger are borderline
	Drops    int64   `json:"drops"`        // members wsload dropped
	Skipped  int64   `json:"skipped"`      // drops not made: every pick's user was away or back within the linger
	// Accounting is the ledger's verdict on the joins and leaves the
	// watchers saw; nil without watchers.
	Accounting   *PresenceTally  `json:"accounting,omitempty"`
	MemberPushes int64           `json:"member_pushes"` // joins and leaves members received (not accounted)
	Stats        Summary         `json:"stats_us"`      // presence_stats, query to answer
	List         Summary         `json:"presence_us"`   // presence (the members), query to answer
	Queries      PresenceQueries `json:"queries"`
	// How long after it began asking every channel answered exactly the
	// counts at rest: before the churn and once every member was back
	// (and the linger had passed); -1 when one did not within its bound.
	SettleStartMs float64 `json:"settle_start_ms"`
	SettleEndMs   float64 `json:"settle_end_ms"`
	ExpConns      []int64 `json:"expected_conns"` // per channel at rest: members and watchers
	ExpUsers      []int64 `json:"expected_users"`
}

// PresenceQueries is what the querier asked and was answered.
type PresenceQueries struct {
	Sent       int64            `json:"sent"`
	Answers    int64            `json:"answers"`
	Unanswered int64            `json:"unanswered"` // given up after queryTimeout
	Errors     map[string]int64 `json:"errors,omitempty"`
	// Implausible counts presence_stats answers above the counts at rest
	// (members away only lower them) or without counts.
	Implausible int64   `json:"implausible"`
	MembersMax  int64   `json:"members_max"` // most members one presence answer listed
	Truncated   int64   `json:"truncated"`   // presence answers that said "truncated":true
	LastConns   []int64 `json:"last_conns"`  // per channel, the last answer
	LastUsers   []int64 `json:"last_users"`
	MinConns    []int64 `json:"min_conns"` // per channel, the lowest conns answered
}
