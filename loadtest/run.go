package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Phases at which every worker process waits for the others.
const (
	PhaseReady = "ready" // every connection set up; the main phase starts after it
	PhaseDone  = "done"  // main phase and draining finished
)

// Coordinator synchronises phases across worker processes and receives
// live progress. A single process uses a Coordinator whose Barrier only
// samples what it needs and returns.
type Coordinator interface {
	// Barrier returns once every worker reached phase.
	Barrier(ctx context.Context, phase string) error
	// Progress receives a snapshot about once a second.
	Progress(p Progress)
}

// Progress is a live snapshot of one process.
type Progress struct {
	Phase string `json:"phase"`
	Counts
	Errors   int64  `json:"errors"`
	Refused  int64  `json:"refused"`  // of Errors, upgrades refused with an HTTP status
	Interval Sparse `json:"interval"` // delivery latency since the previous snapshot
}

// Run executes cfg's scenario (this process's share of it) and returns its
// mergeable outcome.
func Run(ctx context.Context, cfg Config, coord Coordinator) (*Raw, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Raw{Scenario: cfg.Scenario, Workers: 1}
	if s, err := ReadProc(0); err == nil {
		r.SelfRSS0 = s.RSS
	}
	e, err := newEngine(&cfg)
	if err != nil {
		return nil, err
	}
	defer e.shutdown()
	ru := &runner{e: e, cfg: &cfg, r: r, coord: coord}
	ru.phase.Store("setup")
	progCtx, stopProg := context.WithCancel(ctx)
	progDone := make(chan struct{})
	go func() { defer close(progDone); ru.progressLoop(progCtx) }()
	defer func() { stopProg(); <-progDone }()

	if err := ru.setup(ctx); err != nil {
		return nil, err
	}
	c := e.sumCounters()
	r.Ready, r.Failed = c.Ready, c.Failed
	if s, err := ReadProc(0); err == nil {
		r.SelfRSS = s.RSS
	}
	if err := coord.Barrier(ctx, PhaseReady); err != nil {
		return nil, err
	}
	ru.phase.Store(cfg.Scenario)
	cpu0 := selfCPU()
	r.MainStart = time.Now().UnixNano()
	if err := ru.main(ctx); err != nil {
		return nil, err
	}
	r.MainEnd = time.Now().UnixNano()
	r.SelfCPU = selfCPU() - cpu0
	ru.collect()
	if s, err := ReadProc(0); err == nil {
		r.SelfHWM = s.HWM
	}
	ru.phase.Store("done")
	if err := coord.Barrier(ctx, PhaseDone); err != nil {
		return nil, err
	}
	return r, nil
}

// runner carries one run's state between its steps.
type runner struct {
	e     *engine
	cfg   *Config
	r     *Raw
	coord Coordinator
	phase atomic.Value // string
	pubs  []*publisher

	roundsRaw []roundRaw // recover --missed: the measured rounds
}

func (ru *runner) progressLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ru.coord.Progress(ru.snapshot())
	}
}

// snapshot collects the counters and the latency since the last one.
func (ru *runner) snapshot() Progress {
	iv := NewHistogram()
	var mu sync.Mutex
	ru.e.each(func(p *poller) {
		mu.Lock()
		iv.Merge(p.latIv)
		mu.Unlock()
		p.latIv.Reset()
	})
	c := ru.e.sumCounters()
	return Progress{
		Phase: ru.phase.Load().(string), Counts: c.Counts, Errors: c.errTotal(), Refused: c.Errs[errRefused], Interval: iv.Sparse(),
	}
}

// setup opens this process's connections and waits until each is ready
// or has failed.
func (ru *runner) setup(ctx context.Context) error {
	cfg, e := ru.cfg, ru.e
	perPoller := make([][]dialReq, len(e.pollers))
	pubsOf := make([][]*publisher, len(e.pollers))
	rsubsOf := make([][]*awaySub, len(e.pollers))
	add := func(r dialReq) {
		i := int(r.idx) % len(e.pollers)
		perPoller[i] = append(perPoller[i], r)
		if r.rs != nil {
			rsubsOf[i] = append(rsubsOf[i], r.rs)
		}
	}
	switch cfg.Scenario {
	case ScenarioIdle, ScenarioStorm, ScenarioRecover:
		flags := fSub
		if cfg.Scenario != ScenarioIdle {
			flags |= fReconnect
		}
		for i := 0; i < cfg.Conns; i++ {
			if cfg.mine(i) {
				r := dialReq{idx: int32(i), ch: int32(i % cfg.Channels), flags: flags, target: e.subTarget(int32(i))}
				if cfg.Scenario == ScenarioRecover {
					r.rs = &awaySub{trk: newOffsetTrack(), ch: r.ch}
				}
				add(r)
			}
		}
		if cfg.Scenario == ScenarioRecover {
			ru.addPublishers(cfg.Conns, add, pubsOf)
		}
	case ScenarioPresence:
		ru.planPresence(add)
	case ScenarioFanout, ScenarioSlow:
		for i := 0; i < cfg.Subs; i++ {
			if !cfg.mine(i) {
				continue
			}
			flags := fSub
			// The first subscriber of each channel is never slow: the
			// publisher needs normal subscribers to pace itself on.
			if i >= cfg.Channels && cfg.Scenario == ScenarioSlow && isSlow(i, cfg.SlowFraction) {
				flags |= fSlow
				ru.r.SlowSubs++
			}
			add(dialReq{idx: int32(i), ch: int32(i % cfg.Channels), flags: flags, target: e.subTarget(int32(i))})
		}
		ru.addPublishers(cfg.Subs, add, pubsOf)
	}
	var planned int64
	for _, reqs := range perPoller {
		planned += int64(len(reqs))
	}
	// Before the first dial, so that minting is no part of what the run
	// measures, nor the stock of wsload's memory per connection.
	if err := e.tokens.premint(cfg.tokensFor(planned)); err != nil {
		return err
	}
	if e.tokens.stats().Preminted > 0 {
		if s, err := ReadProc(0); err == nil {
			ru.r.SelfRSS0 = s.RSS
		}
	}
	for i, p := range e.pollers {
		reqs, pubs, rsubs := perPoller[i], pubsOf[i], rsubsOf[i]
		p.post(func() {
			if p.rec != nil {
				p.rec.addSubs(rsubs, cfg.DisconnectRate, cfg.Conns)
			}
			if p.pres != nil {
				p.pres.addSubs(rsubs, cfg.ChurnRate, cfg.Conns)
				if i == ru.querierPoller() {
					p.pres.q = newQuerier(cfg.Channels)
				}
			}
			p.pubs = append(p.pubs, pubs...)
			p.dialq = append(p.dialq, reqs...)
			p.dialQueued()
		})
	}
	ru.r.Planned = planned
	deadline := time.Now().Add(cfg.HandshakeTimeout*time.Duration(2+planned/int64(cfg.ConnectConcurrency)) + 5*time.Second)
	for {
		c := e.sumCounters()
		if c.Ready+c.Failed >= planned {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("setup: only %d of %d connections ready after %v", c.Ready, planned, time.Until(deadline))
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// addPublishers plans this worker's publishers, numbered after the subs
// subscribers: their connections, or with PublishHTTP their goroutines.
func (ru *runner) addPublishers(subs int, add func(dialReq), pubsOf [][]*publisher) {
	cfg, e := ru.cfg, ru.e
	for k, pb := range ru.makePublishers() {
		ru.pubs = append(ru.pubs, pb)
		if cfg.PublishHTTP != "" {
			continue
		}
		idx := int32(subs + k)
		pi := int(idx) % len(e.pollers)
		pubsOf[pi] = append(pubsOf[pi], pb)
		add(dialReq{idx: idx, ch: -1, flags: fPub, target: e.pubTarget(int32(k*cfg.Workers+cfg.Worker), idx), pub: pb})
	}
}

// isSlow picks a SlowFraction share of subscribers, evenly spread.
func isSlow(i int, frac float64) bool {
	return int(float64(i+1)*frac) > int(float64(i)*frac)
}

// makePublishers creates this worker's publishers over the channels it owns.
func (ru *runner) makePublishers() []*publisher {
	cfg := ru.cfg
	var owned []int32
	for ch := 0; ch < cfg.Channels; ch++ {
		if cfg.ownsChannel(ch) {
			owned = append(owned, int32(ch))
		}
	}
	if len(owned) == 0 {
		return nil
	}
	n := 0
	for p := 0; p < cfg.Publishers; p++ {
		if p%cfg.Workers == cfg.Worker {
			n++
		}
	}
	n = min(max(n, 1), len(owned))
	groups := make([][]int32, n)
	for i, ch := range owned {
		groups[i%n] = append(groups[i%n], ch)
	}
	var out []*publisher
	for _, g := range groups {
		share := float64(len(g)) / float64(cfg.Channels)
		var budget int64
		for _, ch := range g {
			budget += cfg.Msgs / int64(cfg.Channels)
			if int64(ch) < cfg.Msgs%int64(cfg.Channels) {
				budget++
			}
		}
		if cfg.Msgs > 0 && budget == 0 {
			continue
		}
		out = append(out, newPublisher(g, cfg.Rate*share, budget, cfg.Window))
	}
	return out
}

// main runs the scenario's main phase.
func (ru *runner) main(ctx context.Context) error {
	switch ru.cfg.Scenario {
	case ScenarioIdle:
		return sleepCtx(ctx, ru.cfg.Duration)
	case ScenarioFanout, ScenarioSlow:
		return ru.publish(ctx)
	case ScenarioChurn:
		return ru.churn(ctx)
	case ScenarioStorm:
		return ru.storm(ctx)
	case ScenarioRecover:
		return ru.recover(ctx)
	case ScenarioPresence:
		return ru.presence(ctx)
	}
	return nil
}

// collect folds every poller's figures into the Raw result.
func (ru *runner) collect() {
	e, r := ru.e, ru.r
	var mu sync.Mutex
	lat, hs, sub, rec := NewHistogram(), NewHistogram(), NewHistogram(), NewHistogram()
	r.Chans = make([]chanAgg, ru.cfg.Channels)
	r.SlowChans = make([]chanAgg, ru.cfg.Channels)
	r.CloseCodes = map[string]int64{}
	r.Refused = map[string]int64{}
	e.each(func(p *poller) {
		for _, c := range p.conns {
			if c != nil {
				p.fold(c)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		lat.Merge(p.lat)
		hs.Merge(p.hsLat)
		sub.Merge(p.subLat)
		rec.Merge(p.reconnLat)
		if p.rec != nil {
			r.addRecover(p.rec, ru.cfg.Channels)
		}
		for i := range p.agg {
			r.Chans[i].add(p.agg[i])
			r.SlowChans[i].add(p.slowAgg[i])
		}
		for code, n := range p.closeCodes {
			r.CloseCodes[strconv.Itoa(int(code))] += n
		}
		for status, n := range p.refused {
			r.Refused[strconv.Itoa(int(status))] += n
		}
		for _, d := range p.slowDrops {
			after := 0.0
			if d.lastT > 0 {
				after = float64(d.lastT-r.MainStart) / 1e6
			}
			r.SlowDrops = append(r.SlowDrops, SlowEnd{AfterMs: after, Code: int(d.code)})
		}
		if t := p.lastDelivery(); t > r.LastDelivery {
			r.LastDelivery = t
		}
	})
	r.Latency, r.Handshake, r.Subscribe, r.Reconnect = lat.Sparse(), hs.Sparse(), sub.Sparse(), rec.Sparse()
	if r.Recover != nil {
		r.Recover.Rounds = ru.roundsRaw
	}
	r.PubChans = make([]int64, ru.cfg.Channels)
	for ch := range r.PubChans {
		r.PubChans[ch] = ru.acceptedOn(ch)
	}
	r.Tokens = e.tokens.stats()
	c := e.sumCounters()
	r.Published, r.Acked, r.Received, r.OpenDone, r.ChurnClosed = c.Published, c.Acked, c.Received, c.Open, c.Closed
	if ru.cfg.Scenario == ScenarioChurn {
		r.Failed = c.Failed // every connection of churn is made in the main phase
	}
	r.Errors = map[string]int64{}
	for i, v := range c.Errs {
		if v != 0 {
			r.Errors[errNames[i]] = v
		}
	}
}

// acceptedOn is how many publications channel ch has had accepted, when
// this worker publishes on it (read once no pump runs).
func (ru *runner) acceptedOn(ch int) int64 {
	if !ru.cfg.ownsChannel(ch) {
		return 0
	}
	return ru.e.seq[ch] - ru.e.rejected[ch].Load()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// selfCPU is this process's user+system CPU time in seconds.
func selfCPU() float64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// newHTTPClient keeps one idle connection per publisher.
func newHTTPClient(n int) *http.Client {
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: n + 1, MaxConnsPerHost: n + 1},
	}
}
