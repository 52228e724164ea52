package loadtest

import (
	"context"
	"sync"
	"time"
)

// drainQuiet is how long deliveries must stop before draining ends.
const drainQuiet = 300 * time.Millisecond

// publish runs the fanout and slow main phase: publish until the budget
// is spent or the duration passes, then wait for stragglers.
func (ru *runner) publish(ctx context.Context) error {
	slow := ru.cfg.Scenario == ScenarioSlow
	if slow {
		ru.pauseSlow(true)
	}
	if err := ru.publishAll(ctx); err != nil {
		return err
	}
	if slow {
		ru.pauseSlow(false)
	}
	return ru.drain(ctx)
}

// publishAll runs the publishers until the budget is spent or the
// duration passes, and notes when they stopped.
func (ru *runner) publishAll(ctx context.Context) error {
	e, cfg := ru.e, ru.cfg
	var budget int64
	for _, pb := range ru.pubs {
		budget += pb.budget
	}
	e.publishing.Store(true)
	var wg sync.WaitGroup
	if cfg.PublishHTTP != "" {
		client := newHTTPClient(len(ru.pubs))
		for _, pb := range ru.pubs {
			wg.Add(1)
			go func() { defer wg.Done(); e.runHTTP(ctx, pb, client) }()
		}
	}
	end := time.Now().Add(cfg.Duration)
	for time.Now().Before(end) {
		if budget > 0 && e.sumCounters().Published >= budget {
			break
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			e.publishing.Store(false)
			wg.Wait()
			return err
		}
	}
	e.publishing.Store(false)
	wg.Wait()
	e.each(func(*poller) {}) // every pump has returned: the sequences are final
	ru.r.PublishEnd = time.Now().UnixNano()
	return nil
}

// drain waits until deliveries stop for drainQuiet, at most cfg.Drain.
func (ru *runner) drain(ctx context.Context) error {
	last := ru.e.sumCounters().Received
	quietSince := time.Now()
	deadline := time.Now().Add(ru.cfg.Drain)
	for time.Now().Before(deadline) {
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
		n := ru.e.sumCounters().Received
		if n != last {
			last, quietSince = n, time.Now()
		} else if time.Since(quietSince) >= drainQuiet {
			return nil
		}
	}
	return nil
}

// pauseSlow stops (or resumes) reading on every slow subscriber.
func (ru *runner) pauseSlow(paused bool) {
	ru.e.each(func(p *poller) {
		for _, c := range p.conns {
			if c != nil && c.has(fSlow) {
				p.setPaused(c, paused)
			}
		}
	})
}

// churn opens connections at the rate (this worker's share), each of
// which subscribes and closes, keeping at most Conns in flight.
func (ru *runner) churn(ctx context.Context) error {
	e, cfg := ru.e, ru.cfg
	rate := cfg.Rate / float64(cfg.Workers)
	conc := int64(max(1, cfg.Conns/cfg.Workers))
	start := time.Now()
	var dialed int64
	next := int32(cfg.Worker)
	for time.Since(start) < cfg.Duration {
		c := e.sumCounters()
		inflight := dialed - c.Closed - c.Failed
		n := conc - inflight
		if rate > 0 {
			n = min(n, int64(time.Since(start).Seconds()*rate)+1-dialed)
		}
		if n > 0 {
			reqs := make([][]dialReq, len(e.pollers))
			for ; n > 0; n-- {
				r := dialReq{idx: next, ch: next % int32(cfg.Channels), flags: fSub | fChurn, target: e.subTarget(next)}
				reqs[int(next)%len(e.pollers)] = append(reqs[int(next)%len(e.pollers)], r)
				next += int32(cfg.Workers)
				dialed++
			}
			for i, p := range e.pollers {
				if rq := reqs[i]; len(rq) > 0 {
					p.post(func() { p.dialq = append(p.dialq, rq...); p.dialQueued() })
				}
			}
		}
		if err := sleepCtx(ctx, 2*time.Millisecond); err != nil {
			return err
		}
	}
	ru.r.Planned += dialed
	ru.r.PublishEnd = time.Now().UnixNano()
	// Let the connections in flight finish.
	deadline := time.Now().Add(cfg.HandshakeTimeout + closeTimeoutD)
	for time.Now().Before(deadline) {
		c := e.sumCounters()
		if dialed-c.Closed-c.Failed <= 0 {
			break
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

const closeTimeoutD = time.Duration(closeTimeout)

// storm drops every connection (trigger "client") or waits for the
// gateway to (trigger "server"), then waits until every subscriber is
// connected and subscribed again.
func (ru *runner) storm(ctx context.Context) error {
	e, cfg, r := ru.e, ru.cfg, ru.r
	planned := r.Ready
	start := time.Now()
	if cfg.StormTrigger == "client" {
		r.StormFirst = time.Now().UnixNano()
		e.each(func(p *poller) {
			for _, c := range p.conns {
				if c != nil && c.has(fReady) {
					p.release(c, true)
				}
			}
		})
	} else {
		for e.stormLost() == 0 {
			if time.Since(start) > cfg.Duration {
				return nil // the gateway never dropped anyone
			}
			if err := sleepCtx(ctx, 2*time.Millisecond); err != nil {
				return err
			}
		}
		r.StormFirst = time.Now().UnixNano()
	}
	for time.Since(start) < cfg.Duration {
		if e.sumCounters().Ready >= planned {
			break
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
	r.StormDropped = e.stormLost()
	r.StormMissing = max(0, planned-e.sumCounters().Ready)
	var mu sync.Mutex
	e.each(func(p *poller) {
		mu.Lock()
		defer mu.Unlock()
		if t := e.start.Add(time.Duration(p.lastReady)).UnixNano(); p.lastReady > 0 && t > r.StormLast {
			r.StormLast = t
		}
	})
	return nil
}

// stormLost is how many ready connections were lost so far.
func (e *engine) stormLost() int64 {
	var n int64
	for _, p := range e.pollers {
		n += p.lostReady.Load()
	}
	return n
}
