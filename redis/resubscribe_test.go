package redis

import (
	"context"
	"sync"
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
		return s.plan.unsubWait[ch] > 0
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
	// Subscribe returned with the subscription pending: its done waits
	// among the channel's waiters while Redis, stopped, cannot have the
	// channel again.
	b.mu.Lock()
	pending := b.chans[ch] != nil && len(b.chans[ch].waiters) == 1 && s.plan.unsubWait[ch] > 0
	b.mu.Unlock()
	if !pending {
		t.Fatal("Subscribe during the in-flight UNSUBSCRIBE is not pending")
	}
	select {
	case err := <-published:
		t.Fatalf("subscription confirmed while Redis was stopped (publish: %v)", err)
	default:
	}
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

// gateSink counts deliveries and holds the first delivery of hold until
// release is closed, which stalls that connection's reader.
type gateSink struct {
	hold    string
	held    chan struct{} // closed when the held delivery started
	reader  uint64        // the goroutine held (set before held is closed)
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	n       map[string]int
}

func (s *gateSink) Deliver(channel string, data []byte) {
	msg := string(data)
	s.mu.Lock()
	s.n[msg]++
	s.mu.Unlock()
	if msg == s.hold {
		s.once.Do(func() {
			s.reader = goroutineID()
			close(s.held)
			<-s.release
		})
	}
}

func (s *gateSink) count(msg string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[msg]
}

// Once a connection is replaced, what it still reads is not delivered: the
// new connection carries the channel, and the old one would duplicate its
// messages (and call Deliver concurrently with it). The old connection's
// reader is held in Deliver, so its probe fails while Redis stays alive and
// the old connection stays subscribed until its Close gives up.
func TestReplacedConnectionDeliversNothing(t *testing.T) {
	srv := redistest.Start(t)
	b, err := New(fastConfig(Config{URL: srv.URL(), Logger: testLogger(t)}))
	must(t, err)
	defer b.Close()
	sink := &gateSink{hold: "m1", held: make(chan struct{}), release: make(chan struct{}), n: make(map[string]int)}
	must(t, b.Start(sink))
	released := false
	defer func() {
		if !released {
			close(sink.release)
		}
	}()
	eventually(t, 5*time.Second, b.Ready, "ready")
	const ch = "dup"
	must(t, subscribe(t, b, ch))
	pub := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	send := func(msg string) { must(t, pub.Do(ctx, pub.B().Publish().Channel(ch).Message(msg).Build()).Error()) }

	send("m1")
	<-sink.held
	if sink.reader == 0 {
		t.Fatal("no goroutine id for the held reader")
	}
	send("m2") // queued behind the held delivery on the old connection
	eventually(t, 3*time.Second, func() bool { return b.Stats().ProbeFailures > 0 }, "probe failure")
	eventually(t, 3*time.Second, b.Ready, "ready on a new connection")
	send("m3")
	eventually(t, 2*time.Second, func() bool { return sink.count("m3") > 0 }, "m3 on the new connection")
	close(sink.release)
	released = true
	// The old connection, if still delivering, hands on m2 and m3 now, from
	// the reader goroutine that was held: once that goroutine is gone (its
	// connection closed), nothing more can come from it.
	eventually(t, 5*time.Second, func() bool { return !goroutineAlive(sink.reader) }, "the old connection's reader to end")
	if n := sink.count("m3"); n != 1 {
		t.Fatalf("m3 delivered %d times, want 1", n)
	}
	if n := sink.count("m2"); n > 1 {
		t.Fatalf("m2 delivered %d times, want at most 1", n)
	}
}
