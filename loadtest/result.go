package loadtest

import (
	"math"
	"slices"
)

// Result is the outcome of a whole run as people and scripts read it (the
// --json file).
type Result struct {
	Scenario       string   `json:"scenario"`
	Targets        []string `json:"targets,omitempty"`
	PublishTargets []string `json:"publish_targets,omitempty"` // publishers' gateways, when apart from Targets
	Procs          int      `json:"procs"`

	Conns     int64 `json:"conns"`     // connections planned in setup (churn: dialed)
	Connected int64 `json:"connected"` // ready at the end of setup
	Failed    int64 `json:"failed"`    // failed in setup

	Published  int64   `json:"published"`
	Rejected   int64   `json:"rejected"` // publishes the gateway refused (error reply or HTTP status)
	Expected   int64   `json:"expected"`
	Delivered  int64   `json:"delivered"` // distinct publications received by normal subscribers
	Lost       int64   `json:"lost"`
	Duplicates int64   `json:"duplicates"`
	Reordered  int64   `json:"reordered"`
	LossRatio  float64 `json:"loss_ratio"`

	DurationS      float64 `json:"duration_s"` // main phase, including draining
	PublishS       float64 `json:"publish_s"`  // from the start of publishing to the last delivery
	DeliveriesPerS float64 `json:"deliveries_per_s"`
	PublishesPerS  float64 `json:"publishes_per_s"`

	Latency   Summary `json:"latency_us"`
	Handshake Summary `json:"handshake_us"`
	Subscribe Summary `json:"subscribe_us"`

	Errors       int64            `json:"errors"`
	ErrorsByKind map[string]int64 `json:"errors_by_kind"`
	CloseCodes   map[string]int64 `json:"close_codes"`
	// Refused counts the upgrades answered with an HTTP status other than
	// 101, by status (401: token refused, 429: over a limit); their sum is
	// ErrorsByKind["refused"].
	Refused map[string]int64 `json:"refused,omitempty"`

	// Tokens say how many tokens were minted (--jwt-secret) before the run
	// and during it; nil when none was.
	Tokens *TokenStats `json:"tokens,omitempty"`

	Churn    *ChurnResult    `json:"churn,omitempty"`
	Storm    *StormResult    `json:"storm,omitempty"`
	Slow     *SlowResult     `json:"slow,omitempty"`
	Recover  *RecoverResult  `json:"recover,omitempty"`
	Presence *PresenceResult `json:"presence,omitempty"`

	Server *ServerStats `json:"server,omitempty"`
	Self   SelfStats    `json:"self"`
}

// ChurnResult is the churn scenario's own figures.
type ChurnResult struct {
	Completed      int64   `json:"completed"` // connect, subscribe, close cycles finished
	HandshakesPerS float64 `json:"handshakes_per_s"`
}

// StormResult is the storm scenario's own figures.
type StormResult struct {
	Dropped     int64   `json:"dropped"`      // connections lost at once
	Missing     int64   `json:"missing"`      // not subscribed again by the end
	RecoveredMs float64 `json:"recovered_ms"` // first loss to the last subscribed again (0 when some are missing)
	Reconnect   Summary `json:"reconnect_us"` // per connection: lost to subscribed again
}

// SlowResult is the slow scenario's figures for the subscribers that
// stopped reading (the normal ones are in the main fields).
type SlowResult struct {
	Subs      int64   `json:"subs"`
	Dropped   int64   `json:"dropped"`
	Delivered int64   `json:"delivered"`
	Expected  int64   `json:"expected"`
	DropAtMs  Summary `json:"dropped_after_ms"` // publish time of the last message each got, from the start
	Codes     []int   `json:"codes"`
}

// ServerStats are the gateways' figures from /proc (--server-pid), summed
// over the processes given.
type ServerStats struct {
	PIDs       []int   `json:"pids"`
	RSSBefore  int64   `json:"rss_before"` // bytes, before any connection
	RSSReady   int64   `json:"rss_ready"`  // bytes, every connection set up
	RSSPerConn float64 `json:"rss_per_conn"`
	// RSSDone is the RSS at the end of the main phase: for idle, after the
	// hold, once the garbage of setting up has been collected and returned
	// (what an idle connection costs in the long run).
	RSSDone        int64   `json:"rss_done"`
	RSSPerConnDone float64 `json:"rss_per_conn_done"`
	CPUSeconds     float64 `json:"cpu_s"` // during the main phase
	CPUPercent     float64 `json:"cpu_percent"`
	CPUPerDelivery float64 `json:"cpu_per_delivery_us,omitempty"`
	// Bytes the gateways wrote during the main phase (ProcSample.Written),
	// and per delivery: frames with their headers, replies and pings too.
	WrittenBytes       int64   `json:"written_bytes,omitempty"`
	WrittenPerDelivery float64 `json:"written_per_delivery,omitempty"`
}

// SelfStats are the load generator's own costs, summed over its processes.
type SelfStats struct {
	CPUSeconds  float64 `json:"cpu_s"` // during the main phase
	CPUPerMsgUs float64 `json:"cpu_per_msg_us,omitempty"`
	RSS         int64   `json:"rss"` // bytes, every connection set up
	RSSPerConn  float64 `json:"rss_per_conn"`
	PeakRSS     int64   `json:"peak_rss"`
	CPUPercent  float64 `json:"cpu_percent"` // of one core, averaged over the main phase
}

// Finalize computes the Result from the merged raw outcome.
func Finalize(r *Raw) *Result {
	res := &Result{
		Scenario: r.Scenario, Procs: r.Workers,
		Conns: r.Planned, Connected: r.Ready, Failed: r.Failed,
		Published:  r.Published,
		Latency:    r.Latency.Histogram().Summarize(),
		Handshake:  r.Handshake.Histogram().Summarize(),
		Subscribe:  r.Subscribe.Histogram().Summarize(),
		CloseCodes: r.CloseCodes, ErrorsByKind: r.Errors,
	}
	if len(r.Refused) > 0 {
		res.Refused = r.Refused
	}
	if t := r.Tokens; t.Preminted+t.DuringRun > 0 {
		res.Tokens = &t
	}
	for _, v := range r.Errors {
		res.Errors += v
	}
	var accepted int64
	for ch, pub := range r.PubChans {
		accepted += pub
		if ch < len(r.Chans) {
			a := r.Chans[ch]
			res.Expected += a.Subs * pub
			res.Delivered += a.Unique
			res.Duplicates += a.Dups
			res.Reordered += a.Reordered
		}
	}
	res.Rejected = r.Published - accepted
	if r.Scenario == ScenarioFanout || r.Scenario == ScenarioSlow || r.Scenario == ScenarioRecover {
		res.Rejected = max(0, res.Rejected)
	} else {
		res.Rejected = 0
	}
	res.Lost = max(0, res.Expected-res.Delivered)
	if res.Expected > 0 {
		res.LossRatio = float64(res.Lost) / float64(res.Expected)
	}
	if r.Scenario == ScenarioRecover {
		finalizeRecover(res, r)
	}
	res.Presence = r.Presence
	if r.MainEnd > r.MainStart {
		res.DurationS = secs(r.MainEnd - r.MainStart)
	}
	end := max(r.LastDelivery, r.PublishEnd)
	if r.LastDelivery == 0 {
		end = r.PublishEnd
	}
	if end > r.MainStart && r.MainStart > 0 {
		res.PublishS = secs(end - r.MainStart)
		res.DeliveriesPerS = round1(float64(res.Delivered) / res.PublishS)
		if r.PublishEnd > r.MainStart {
			res.PublishesPerS = round1(float64(r.Published) / secs(r.PublishEnd-r.MainStart))
		}
	}
	switch r.Scenario {
	case ScenarioChurn:
		res.Churn = &ChurnResult{Completed: r.ChurnClosed}
		if r.PublishEnd > r.MainStart {
			res.Churn.HandshakesPerS = round1(float64(res.Handshake.Count) / secs(r.PublishEnd-r.MainStart))
		}
	case ScenarioStorm:
		res.Storm = &StormResult{Dropped: r.StormDropped, Missing: r.StormMissing, Reconnect: r.Reconnect.Histogram().Summarize()}
		if r.StormMissing == 0 && r.StormLast > r.StormFirst && r.StormDropped > 0 {
			res.Storm.RecoveredMs = round1(float64(r.StormLast-r.StormFirst) / 1e6)
		}
	case ScenarioSlow:
		s := &SlowResult{Subs: r.SlowSubs, Dropped: int64(len(r.SlowDrops))}
		for ch, pub := range r.PubChans {
			if ch < len(r.SlowChans) {
				s.Expected += r.SlowChans[ch].Subs * pub
				s.Delivered += r.SlowChans[ch].Unique
			}
		}
		h := NewHistogram()
		for _, d := range r.SlowDrops {
			h.Record(int64(d.AfterMs))
			if !slices.Contains(s.Codes, d.Code) {
				s.Codes = append(s.Codes, d.Code)
			}
		}
		slices.Sort(s.Codes)
		s.DropAtMs = h.Summarize()
		res.Slow = s
	}
	res.Self = SelfStats{CPUSeconds: round3(r.SelfCPU), RSS: r.SelfRSS, PeakRSS: r.SelfHWM}
	if r.Received > 0 {
		res.Self.CPUPerMsgUs = round3(r.SelfCPU * 1e6 / float64(r.Received))
	}
	if r.Ready > 0 {
		res.Self.RSSPerConn = round1(float64(r.SelfRSS-r.SelfRSS0) / float64(r.Ready))
	}
	if res.DurationS > 0 {
		res.Self.CPUPercent = round1(100 * r.SelfCPU / res.DurationS)
	}
	return res
}

// AddServer fills the gateways' figures from samples taken before setup,
// at the ready barrier and at the done barrier.
func (res *Result) AddServer(pids []int, before, ready, done ProcSample) {
	s := &ServerStats{PIDs: pids, RSSBefore: before.RSS, RSSReady: ready.RSS, RSSDone: done.RSS}
	if res.Connected > 0 {
		s.RSSPerConn = round1(float64(ready.RSS-before.RSS) / float64(res.Connected))
		s.RSSPerConnDone = round1(float64(done.RSS-before.RSS) / float64(res.Connected))
	}
	s.CPUSeconds = round3(done.CPUSec - ready.CPUSec)
	if wall := done.At.Sub(ready.At).Seconds(); wall > 0 {
		s.CPUPercent = round1(100 * s.CPUSeconds / wall)
	}
	if done.Written > 0 {
		s.WrittenBytes = done.Written - ready.Written
	}
	if res.Delivered > 0 {
		s.CPUPerDelivery = round3(s.CPUSeconds * 1e6 / float64(res.Delivered))
		s.WrittenPerDelivery = round1(float64(s.WrittenBytes) / float64(res.Delivered))
	}
	res.Server = s
}

func secs(ns int64) float64    { return float64(ns) / 1e9 }
func round1(v float64) float64 { return math.Round(v*10) / 10 }
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
