package redis

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// writerEnv is what a writer goroutine (the registry's, the presence
// store's) takes from its broker.
type writerEnv struct {
	client  rueidis.Client // the broker's; set once
	id      string         // instance id; set once
	timeout time.Duration  // Config.CommandTimeout; set once
	log     *slog.Logger   // set once
	stats   *stats         // the broker's counters
	cluster bool           // the client is a cluster client; set once
}

// bg bounds one batch of commands.
func (e *writerEnv) bg() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), e.timeout)
}

// writerCtl is how the others drive a writer goroutine (the registry's, the
// presence store's): wake-ups after a queued operation, Sync requests, and
// its stop.
type writerCtl struct {
	wake    chan struct{}      // cap 1: sent by poke, read by the goroutine
	syncReq chan chan struct{} // sent by sync, answered by the goroutine
	stop    chan struct{}      // closed by halt
	done    chan struct{}      // closed when the goroutine returns
	halted  *atomic.Bool       // set by the first halt
}

func newWriterCtl() writerCtl {
	return writerCtl{
		wake:    make(chan struct{}, 1),
		syncReq: make(chan chan struct{}),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		halted:  new(atomic.Bool),
	}
}

// poke wakes the goroutine; a wake-up already pending covers this one.
func (w *writerCtl) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// sync waits until the goroutine answered a request sent after every
// operation queued before the call, or ctx ends; errClosed once it stopped.
func (w *writerCtl) sync(ctx context.Context, errClosed error) error {
	ch := make(chan struct{})
	select {
	case w.syncReq <- ch:
	case <-w.done:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// halt stops the goroutine and waits for it. It reports whether this call
// did it.
func (w *writerCtl) halt() bool {
	if !w.halted.CompareAndSwap(false, true) {
		return false
	}
	close(w.stop)
	<-w.done
	return true
}

var (
	errRegistryClosed = errors.New("redis: registry closed")
	errPresenceClosed = errors.New("redis: presence closed")
)
