package loadtest

import "slices"

// RoundResult is one measured round of recover --missed: every subscriber
// dropped at once, Missed publications made while they were away, all of
// them reconnected at once with since.
type RoundResult struct {
	Subs         int64 `json:"subs"`          // subscribers dropped and reconnected
	Missed       int64 `json:"missed"`        // publications accepted while they were away, all channels
	CaughtUp     int64 `json:"caught_up"`     // recovered, and received their whole replay
	NotRecovered int64 `json:"not_recovered"` // answered recovered:false (or another epoch)
	Unsettled    int64 `json:"unsettled"`     // neither, within --duration
	Replayed     int64 `json:"replayed"`      // messages the recovering oks announced
	// From the reconnect burst's start to the last subscriber settled
	// (caught up or answered not recovered), and per caught-up subscriber
	// to its last replayed message.
	AllMs   float64 `json:"all_caught_up_ms"`
	CatchUp Summary `json:"catch_up_us"`
	// The gateways' CPU (--server-pid) from the burst's start until every
	// subscriber settled, and per replayed message.
	GatewayCPUS        float64 `json:"gateway_cpu_s,omitempty"`
	GatewayPerReplayUs float64 `json:"gateway_cpu_per_replayed_us,omitempty"`
	// How much the gateways' RSS grew over the same span: the replays
	// queued at once.
	GatewayRSSGrowth int64 `json:"gateway_rss_growth,omitempty"`
}

// RoundMedian is the median over the rounds of each figure on its own.
type RoundMedian struct {
	AllMs              float64 `json:"all_caught_up_ms"`
	CatchUpP50Us       float64 `json:"catch_up_p50_us"`
	CatchUpP99Us       float64 `json:"catch_up_p99_us"`
	GatewayCPUS        float64 `json:"gateway_cpu_s,omitempty"`
	GatewayPerReplayUs float64 `json:"gateway_cpu_per_replayed_us,omitempty"`
}

func finalizeRounds(raw []roundRaw) []RoundResult {
	var out []RoundResult
	for _, r := range raw {
		rr := RoundResult{Subs: r.Subs, Missed: r.Missed, CaughtUp: r.Caught, NotRecovered: r.NotRecovered,
			Unsettled: r.Subs - r.Caught - r.NotRecovered, Replayed: r.Replayed, CatchUp: r.CatchUp.Histogram().Summarize()}
		if r.Last > r.Start && r.Start > 0 {
			rr.AllMs = round1(float64(r.Last-r.Start) / 1e6)
		}
		out = append(out, rr)
	}
	return out
}

// medianRounds sets RoundMedian from Rounds (nil without rounds).
func (s *RecoverResult) medianRounds() {
	if len(s.Rounds) == 0 {
		s.RoundMedian = nil
		return
	}
	med := func(f func(r *RoundResult) float64) float64 {
		v := make([]float64, len(s.Rounds))
		for i := range s.Rounds {
			v[i] = f(&s.Rounds[i])
		}
		slices.Sort(v)
		if n := len(v); n%2 == 0 {
			return (v[n/2-1] + v[n/2]) / 2
		}
		return v[len(v)/2]
	}
	s.RoundMedian = &RoundMedian{
		AllMs:              med(func(r *RoundResult) float64 { return r.AllMs }),
		CatchUpP50Us:       med(func(r *RoundResult) float64 { return float64(r.CatchUp.P50) }),
		CatchUpP99Us:       med(func(r *RoundResult) float64 { return float64(r.CatchUp.P99) }),
		GatewayCPUS:        round3(med(func(r *RoundResult) float64 { return r.GatewayCPUS })),
		GatewayPerReplayUs: round3(med(func(r *RoundResult) float64 { return r.GatewayPerReplayUs })),
	}
}

// AddRoundServer fills each round's gateway CPU from the samples taken
// at its RoundPhases barriers (sample reports false for a phase not
// sampled).
func (res *Result) AddRoundServer(sample func(phase string) (ProcSample, bool)) {
	s := res.Recover
	if s == nil || len(s.Rounds) == 0 {
		return
	}
	for i := range s.Rounds {
		r := &s.Rounds[i]
		burst, caught := RoundPhases(i + 1)
		a, ok1 := sample(burst)
		b, ok2 := sample(caught)
		if !ok1 || !ok2 {
			continue
		}
		r.GatewayCPUS = round3(b.CPUSec - a.CPUSec)
		r.GatewayRSSGrowth = b.RSS - a.RSS
		if r.Replayed > 0 {
			r.GatewayPerReplayUs = round3(r.GatewayCPUS * 1e6 / float64(r.Replayed))
		}
	}
	s.medianRounds()
}
