package loadtest

import (
	"context"
	"time"
)

// recover runs the recover main phase: publish at the steady rate while
// the pollers drop subscribers at random, then let every subscriber that
// is away come back and catch up, and wait for stragglers.
func (ru *runner) recover(ctx context.Context) error {
	if ru.cfg.Missed > 0 {
		return ru.rounds(ctx)
	}
	ru.e.dropping.Store(true)
	err := ru.publishAll(ctx)
	ru.e.dropping.Store(false)
	if err != nil {
		return err
	}
	if err := ru.awaitBack(ctx); err != nil {
		return err
	}
	return ru.drain(ctx)
}

// awaitBack waits until every connection that was ready after setup is
// ready again, at most the longest time away plus two subscribe deadlines
// (a reconnect that fails once retries after a backoff).
func (ru *runner) awaitBack(ctx context.Context) error {
	deadline := time.Now().Add(ru.cfg.AwayMax + 2*ru.cfg.HandshakeTimeout)
	for ru.e.sumCounters().Ready < ru.r.Ready && time.Now().Before(deadline) {
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}
