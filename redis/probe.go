package redis

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

var errProbeTimeout = errors.New("redis: liveness probe timed out")

// prober is one shard's liveness probe: the shard publishes a numbered probe
// on its own probe channel every ProbeInterval and declares the connection
// dead when one does not come back in time, which catches a Redis that
// stalls without closing the socket.
type prober struct {
	// Owned by the shard goroutine.
	seq  uint64    // last probe sent
	sent time.Time // when it went out; zero while none is outstanding

	ack  atomic.Uint64 // last probe that came back; stored by the broker's message handler
	void atomic.Uint64 // last probe Redis refused to publish; stored by send's goroutine
}

// reset forgets the outstanding probe (a new connection).
func (p *prober) reset() { p.sent = time.Time{} }

// answered records a probe that came back.
func (p *prober) answered(seq uint64) { p.ack.Store(seq) }

// check runs every ProbeInterval: errProbeTimeout when the outstanding probe
// is overdue at now, next when a new one may go out. A probe Redis refused
// (CLUSTERDOWN during a failover, MOVED) proves Redis alive, so it counts as
// answered.
func (p *prober) check(now time.Time, timeout time.Duration) (next bool, err error) {
	if p.sent.IsZero() {
		return true, nil
	}
	if p.ack.Load() >= p.seq || p.void.Load() >= p.seq {
		p.sent = time.Time{}
		return true, nil
	}
	if now.Sub(p.sent) > timeout {
		return false, errProbeTimeout
	}
	return false, nil
}

// send publishes the next probe on ch through node (the shard's own, so that
// on a cluster a stale slot map elsewhere cannot fail it), from a goroutine
// counted in wg.
func (p *prober) send(node rueidis.Client, cluster bool, ch string, timeout time.Duration, wg *sync.WaitGroup) {
	p.seq++
	p.sent = time.Now()
	seq := p.seq
	msg := string(appendProbe(nil, seq))
	var cmd rueidis.Completed
	if cluster {
		cmd = node.B().Spublish().Channel(ch).Message(msg).Build()
	} else {
		cmd = node.B().Publish().Channel(ch).Message(msg).Build()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := node.Do(ctx, cmd).Error()
		cancel()
		if _, ok := rueidis.IsRedisErr(err); ok {
			p.void.Store(seq)
		}
	}()
}
