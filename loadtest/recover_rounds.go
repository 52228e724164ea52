package loadtest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// burstQuiet is the pause between the last missed publication's ack and
// the reconnect burst, so that the gateway's work on the drops and the
// publications is over before the recovery's CPU is read.
const burstQuiet = 100 * time.Millisecond

// RoundPhases names the barriers of round i (from 1) of recover
// --missed at which the gateway is sampled: the reconnect burst starts
// after the first; the second is reached once every subscriber settled.
func RoundPhases(i int) (burst, caught string) {
	n := strconv.Itoa(i)
	return roundPhase("burst", n), roundPhase("caught", n)
}

func roundPhase(step, round string) string { return step + "-" + round }

// rounds runs recover --missed. A first round with one publication per
// channel, not reported, gives every subscriber the stream's epoch (the
// ok of an empty stream has none); then cfg.Rounds measured rounds. Each
// worker runs every round, whatever happened, so barriers stay matched.
func (ru *runner) rounds(ctx context.Context) error {
	if _, err := ru.round(ctx, "warmup", 1); err != nil {
		return err
	}
	for i := 1; i <= ru.cfg.Rounds; i++ {
		r, err := ru.round(ctx, strconv.Itoa(i), ru.cfg.Missed)
		if err != nil {
			return err
		}
		ru.roundsRaw = append(ru.roundsRaw, r)
	}
	return nil
}

// round drops every subscriber at once, publishes perChannel on each
// channel while they are away, reconnects them all at once and waits
// until each has settled (at most cfg.Duration), then for stragglers.
func (ru *runner) round(ctx context.Context, name string, perChannel int64) (roundRaw, error) {
	e, cfg := ru.e, ru.cfg
	var mu sync.Mutex
	var dropped int64
	e.each(func(p *poller) {
		n := p.dropAll()
		mu.Lock()
		dropped += n
		mu.Unlock()
	})
	// No worker publishes before every worker's subscribers are away.
	if err := ru.coord.Barrier(ctx, roundPhase("dropped", name)); err != nil {
		return roundRaw{}, err
	}
	missed, err := ru.publishMissed(ctx, perChannel)
	if err != nil {
		return roundRaw{}, err
	}
	if err := sleepCtx(ctx, burstQuiet); err != nil {
		return roundRaw{}, err
	}
	if err := ru.coord.Barrier(ctx, roundPhase("burst", name)); err != nil {
		return roundRaw{}, err
	}
	done := make(chan struct{})
	e.burstDone = done
	e.burstLeft.Store(dropped)
	if dropped == 0 {
		close(done)
	}
	at := e.now()
	e.burstAt.Store(at)
	e.each((*poller).reconnectAll)
	t := time.NewTimer(cfg.Duration)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C: // reported as subscribers that did not settle
	case <-ctx.Done():
		return roundRaw{}, ctx.Err()
	}
	if err := ru.coord.Barrier(ctx, roundPhase("caught", name)); err != nil {
		return roundRaw{}, err
	}
	r := roundRaw{Missed: missed, Start: e.start.Add(time.Duration(at)).UnixNano()}
	e.each(func(p *poller) {
		o := p.takeRound()
		mu.Lock()
		r.add(o)
		mu.Unlock()
	})
	// A duplicate arriving late is counted before the next drop.
	return r, ru.drain(ctx)
}

// publishMissed has this worker's publishers publish perChannel on each
// of their channels and waits until the gateway acknowledged all of them
// (each then has its offset in history); it returns how many it accepted.
func (ru *runner) publishMissed(ctx context.Context, perChannel int64) (int64, error) {
	if len(ru.pubs) == 0 {
		return 0, nil
	}
	before := ru.accepted()
	for _, pb := range ru.pubs {
		pb.rearm(perChannel) // no pump runs: publishAll ended with every poller past its pumps
	}
	if err := ru.publishAll(ctx); err != nil {
		return 0, err
	}
	if err := ru.awaitAcked(ctx); err != nil {
		return 0, err
	}
	return ru.accepted() - before, nil
}

// awaitAcked waits until every WebSocket publisher has had every publish
// answered, at most a subscribe deadline (HTTP publishers wait for each).
func (ru *runner) awaitAcked(ctx context.Context) error {
	deadline := time.Now().Add(ru.cfg.HandshakeTimeout)
	for {
		var mu sync.Mutex
		open := int64(0)
		ru.e.each(func(p *poller) {
			for _, pb := range p.pubs {
				mu.Lock()
				open += pb.sent - pb.acked
				mu.Unlock()
			}
		})
		if open == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("recover: %d publishes unanswered after %v", open, ru.cfg.HandshakeTimeout)
		}
		if err := sleepCtx(ctx, 2*time.Millisecond); err != nil {
			return err
		}
	}
}

// accepted is how many publications this worker's channels have had
// accepted so far.
func (ru *runner) accepted() int64 {
	var n int64
	for ch := range ru.e.seq {
		n += ru.acceptedOn(ch)
	}
	return n
}
