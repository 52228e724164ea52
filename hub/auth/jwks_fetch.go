package auth

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// fetcher keeps a JWKS current. One goroutine per Verifier does every fetch,
// so that Verify never waits on the network except in the one call that asks
// for a refetch (for at most RefetchWait), and no number of tokens can start
// more than one fetch per minRefetch.
type fetcher struct {
	load       loader
	install    func([]jwksKey) // builds and publishes the new keyring
	minRefetch time.Duration
	refresh    time.Duration // <0: never without a request
	log        *slog.Logger

	last atomic.Int64 // when the latest fetch started, UnixNano

	mu       sync.Mutex
	inflight chan struct{} // closed when the pending or running fetch ends
	kick     chan struct{} // capacity 1: a request for the goroutine

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// newFetcher returns a fetcher whose goroutine is not started yet.
func newFetcher(load loader, install func([]jwksKey), minRefetch, refresh time.Duration, log *slog.Logger) *fetcher {
	ctx, cancel := context.WithCancel(context.Background())
	return &fetcher{
		load: load, install: install, minRefetch: minRefetch, refresh: refresh, log: log,
		kick: make(chan struct{}, 1), ctx: ctx, cancel: cancel, done: make(chan struct{}),
	}
}

// fetch loads, parses and installs the document once; on failure the keys in
// use stay.
func (f *fetcher) fetch() error {
	f.last.Store(time.Now().UnixNano())
	data, err := f.load(f.ctx)
	if err != nil {
		return err
	}
	keys, skipped, err := parseJWKS(data)
	for _, s := range skipped {
		f.log.Warn("auth: JWKS key skipped", "err", s)
	}
	if err != nil {
		return err
	}
	f.install(keys)
	return nil
}

// start runs the goroutine: requested fetches, and one every refresh (every
// minRefetch after a failure, so that a provider that was down at start is
// picked up without waiting for a token to ask).
func (f *fetcher) start(lastOK bool) {
	go func() {
		defer close(f.done)
		defer f.finish()
		timer := time.NewTimer(f.next(lastOK))
		defer timer.Stop()
		for {
			select {
			case <-f.ctx.Done():
				return
			case <-f.kick:
				f.mu.Lock()
				pending := f.inflight != nil
				f.mu.Unlock()
				if !pending {
					continue // a timed fetch already served it
				}
			case <-timer.C:
			}
			err := f.fetch()
			if err != nil && f.ctx.Err() == nil {
				f.log.Error("auth: JWKS fetch failed; the keys in use stay", "err", err)
			}
			f.finish()
			timer.Reset(f.next(err == nil))
		}
	}()
}

// next is the wait before the next unrequested fetch.
func (f *fetcher) next(lastOK bool) time.Duration {
	switch {
	case !lastOK:
		return f.minRefetch
	case f.refresh < 0:
		return time.Duration(1<<63 - 1)
	}
	return f.refresh
}

// finish wakes the Verify call waiting for the fetch that just ended.
func (f *fetcher) finish() {
	f.mu.Lock()
	if f.inflight != nil {
		close(f.inflight)
		f.inflight = nil
	}
	f.mu.Unlock()
}

// request asks for a refetch and returns a channel closed when it is done, or
// nil when none may start now: one ran less than minRefetch ago, one is
// already pending (its requester waits for it; nobody else does), or the
// Verifier is closed. The common refusal costs one atomic load.
func (f *fetcher) request() <-chan struct{} {
	if time.Now().UnixNano()-f.last.Load() < int64(f.minRefetch) {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inflight != nil || f.ctx.Err() != nil || time.Now().UnixNano()-f.last.Load() < int64(f.minRefetch) {
		return nil
	}
	// Taking the slot here, not when the goroutine starts the fetch, keeps
	// concurrent requesters from queueing a second one.
	f.last.Store(time.Now().UnixNano())
	f.inflight = make(chan struct{})
	select {
	case f.kick <- struct{}{}:
	default: // a kick is still queued (a timed fetch served its request): it will serve this one
	}
	return f.inflight
}

// stop ends the goroutine, cancelling a fetch in flight, and waits for it.
func (f *fetcher) stop() {
	f.cancel()
	<-f.done
}
