package loadtest

// Raw is one process's outcome of a run, in a form that adds up across
// worker processes: per-channel sums and sparse histograms. Finalize turns
// the merged Raw into the Result people read.
type Raw struct {
	Scenario string `json:"scenario"`
	Workers  int    `json:"workers"`

	Planned  int64 `json:"planned"`   // connections this process set up before the main phase
	Ready    int64 `json:"ready"`     // of them, ready at the end of setup
	Failed   int64 `json:"failed"`    // of them, failed during setup
	OpenDone int64 `json:"open_done"` // connections open at the end of the main phase

	Published int64 `json:"published"`
	Acked     int64 `json:"acked"`
	Received  int64 `json:"received"`

	Chans     []chanAgg `json:"chans"`      // per channel, normal subscribers
	SlowChans []chanAgg `json:"slow_chans"` // per channel, slow subscribers
	PubChans  []int64   `json:"pub_chans"`  // per channel, publications accepted (owner only)

	Errors     map[string]int64 `json:"errors"`
	CloseCodes map[string]int64 `json:"close_codes"`
	Refused    map[string]int64 `json:"refused"` // refused upgrades by HTTP status

	Latency   Sparse `json:"latency"`
	Handshake Sparse `json:"handshake"`
	Subscribe Sparse `json:"subscribe"`
	Reconnect Sparse `json:"reconnect"`

	MainStart    int64 `json:"main_start"`    // unix ns
	PublishEnd   int64 `json:"publish_end"`   // unix ns
	MainEnd      int64 `json:"main_end"`      // unix ns, after draining
	LastDelivery int64 `json:"last_delivery"` // unix ns of the newest delivery's arrival

	ChurnClosed int64 `json:"churn_closed"`

	Tokens TokenStats `json:"tokens"`

	SlowSubs  int64     `json:"slow_subs"`
	SlowDrops []SlowEnd `json:"slow_drops"`

	StormDropped int64 `json:"storm_dropped"` // connections lost in the storm
	StormFirst   int64 `json:"storm_first"`   // unix ns of the first loss
	StormLast    int64 `json:"storm_last"`    // unix ns the last one was subscribed again
	StormMissing int64 `json:"storm_missing"` // connections not subscribed again by the end

	Recover *RecoverRaw `json:"recover,omitempty"`
	// presence-churn runs in one process: its figures are final here.
	Presence *PresenceResult `json:"presence,omitempty"`

	SelfCPU  float64 `json:"self_cpu_s"` // CPU seconds spent in the main phase
	SelfRSS  int64   `json:"self_rss"`   // bytes, at the end of setup
	SelfHWM  int64   `json:"self_hwm"`   // peak RSS, bytes
	SelfRSS0 int64   `json:"self_rss_0"` // bytes, before any connection
}

// SlowEnd describes how one slow subscriber was dropped.
type SlowEnd struct {
	AfterMs float64 `json:"after_ms"` // last delivered publication's time, from the start of publishing
	Code    int     `json:"code"`     // close code seen (1006: reset or EOF without a close frame)
}

// Merge adds o into r.
func (r *Raw) Merge(o *Raw) {
	if r.Scenario == "" {
		r.Scenario = o.Scenario
	}
	r.Workers += o.Workers
	r.Planned += o.Planned
	r.Ready += o.Ready
	r.Failed += o.Failed
	r.OpenDone += o.OpenDone
	r.Published += o.Published
	r.Acked += o.Acked
	r.Received += o.Received
	r.Chans = mergeAggs(r.Chans, o.Chans)
	r.SlowChans = mergeAggs(r.SlowChans, o.SlowChans)
	if len(r.PubChans) < len(o.PubChans) {
		r.PubChans = append(r.PubChans, make([]int64, len(o.PubChans)-len(r.PubChans))...)
	}
	for i, v := range o.PubChans {
		r.PubChans[i] += v
	}
	r.Errors = mergeMap(r.Errors, o.Errors)
	r.CloseCodes = mergeMap(r.CloseCodes, o.CloseCodes)
	r.Refused = mergeMap(r.Refused, o.Refused)
	r.Latency = mergeSparse(r.Latency, o.Latency)
	r.Handshake = mergeSparse(r.Handshake, o.Handshake)
	r.Subscribe = mergeSparse(r.Subscribe, o.Subscribe)
	r.Reconnect = mergeSparse(r.Reconnect, o.Reconnect)
	r.MainStart = minNonZero(r.MainStart, o.MainStart)
	r.StormFirst = minNonZero(r.StormFirst, o.StormFirst)
	r.PublishEnd = max(r.PublishEnd, o.PublishEnd)
	r.MainEnd = max(r.MainEnd, o.MainEnd)
	r.LastDelivery = max(r.LastDelivery, o.LastDelivery)
	r.ChurnClosed += o.ChurnClosed
	r.Tokens.add(o.Tokens)
	r.SlowSubs += o.SlowSubs
	r.SlowDrops = append(r.SlowDrops, o.SlowDrops...)
	r.StormDropped += o.StormDropped
	r.StormLast = max(r.StormLast, o.StormLast)
	r.StormMissing += o.StormMissing
	if o.Recover != nil {
		if r.Recover == nil {
			r.Recover = &RecoverRaw{}
		}
		r.Recover.merge(o.Recover)
	}
	if r.Presence == nil {
		r.Presence = o.Presence
	}
	r.SelfCPU += o.SelfCPU
	r.SelfRSS += o.SelfRSS
	r.SelfHWM += o.SelfHWM
	r.SelfRSS0 += o.SelfRSS0
}

func mergeAggs(a, b []chanAgg) []chanAgg {
	if len(a) < len(b) {
		a = append(a, make([]chanAgg, len(b)-len(a))...)
	}
	for i := range b {
		a[i].add(b[i])
	}
	return a
}

func mergeMap(a, b map[string]int64) map[string]int64 {
	if a == nil {
		a = map[string]int64{}
	}
	for k, v := range b {
		a[k] += v
	}
	return a
}

func mergeSparse(a, b Sparse) Sparse {
	h := a.Histogram()
	h.Merge(b.Histogram())
	return h.Sparse()
}

func minNonZero(a, b int64) int64 {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}
