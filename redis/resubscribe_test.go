package redis

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/wshub/wshub/redis/redistest"
)

// A Subscribe that arrives while the UNSUBSCRIBE of the same channel is in
// flight must not be confirmed until Redis has the channel again: a PUBLISH
// sent right after the confirmation has to arrive. Redis is stopped so that
// the UNSUBSCRIBE stays unanswered while Subscribe is called.
func TestSubscribeDuringInflightUnsubscribe(t *testing.T) {
	srv := redistest.Start(t)
	// Slow probes: the short stall below must not end the session.
	b, sink := startBroker(t, Config{URL: srv.URL(), ProbeInterval: time.Second, ProbeTimeout: 3 * time.Second})
	pub := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	must(t, pub.Do(ctx, pub.B().Ping().Build()).Error()) // connected before the stall
	const ch = "flip"
	must(t, subscribe(t, b, ch))
	s := b.shards[""]

	srv.Signal(syscall.SIGSTOP)
	stopped := true
	defer func() {
		if stopped {
			srv.Signal(syscall.SIGCONT)
		}
	}()
	b.Unsubscribe(ch)
	eventually(t, 2*time.Second, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return s.unsubWait[ch] > 0
	}, "UNSUBSCRIBE in flight")

	// The publication is sent as soon as the subscription is confirmed.
	published := make(chan error, 1)
	// done may run inside Subscribe: publish from a goroutine.
	b.Subscribe(ch, func(err error) {
		go func() {
			if err != nil {
				published <- err
				return
			}
			published <- pub.Do(ctx, pub.B().Publish().Channel(ch).Message("after-ok").Build()).Error()
		}()
	})
	time.Sleep(50 * time.Millisecond)
	srv.Signal(syscall.SIGCONT)
	stopped = false
	select {
	case err := <-published:
		must(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("subscription not confirmed")
	}
	eventually(t, 2*time.Second, func() bool { return sink.has(ch, "after-ok") }, "delivery of a publication made after the subscription was confirmed")
}
