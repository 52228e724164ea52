package redis

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wshub/wshub/hub"

	"github.com/wshub/wshub/redis/redistest"
)

// Subscribers on A and B, publishers on B and C: every subscriber gets every
// message in one order, and Redis sees exactly one subscription per
// subscribing instance.
func TestThreeInstancesOneOrder(t *testing.T) {
	srv := redistest.Start(t)
	a, sa := startBroker(t, Config{URL: srv.URL(), InstanceID: "a"})
	b, sb := startBroker(t, Config{URL: srv.URL(), InstanceID: "b"})
	c, _ := startBroker(t, Config{URL: srv.URL(), InstanceID: "c"})
	admin := srv.Client()
	const ch = "room:42"
	must(t, subscribe(t, a, ch))
	must(t, subscribe(t, b, ch))
	if n := redistest.NumSub(t, admin, ch, false); n != 2 {
		t.Fatalf("NUMSUB %s = %d, want 2 (one per subscribing instance)", ch, n)
	}

	const per = 200
	var wg sync.WaitGroup
	for _, p := range []*Broker{b, c} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				p.Publish(ch, []byte(fmt.Sprintf(`{"from":%q,"i":%d}`, p.InstanceID(), i)), func(err error) {
					if err != nil {
						t.Errorf("publish: %v", err)
					}
				})
			}
		}()
	}
	wg.Wait()
	eventually(t, 5*time.Second, func() bool { return len(sa.get(ch)) == 2*per && len(sb.get(ch)) == 2*per }, "all messages on both")
	ga, gb := sa.get(ch), sb.get(ch)
	for i := range ga {
		if ga[i] != gb[i] {
			t.Fatalf("order differs at %d: %s vs %s", i, ga[i], gb[i])
		}
	}
	// Each instance's own publications keep their order.
	last := map[string]int{"b": -1, "c": -1}
	for _, m := range ga {
		var from string
		var i int
		fmt.Sscanf(m, `{"from":%q,"i":%d}`, &from, &i)
		if i != last[from]+1 {
			t.Fatalf("publications of %s out of order: %d after %d", from, i, last[from])
		}
		last[from] = i
	}

	a.Unsubscribe(ch)
	eventually(t, 2*time.Second, func() bool { return redistest.NumSub(t, admin, ch, false) == 1 }, "NUMSUB 1 after a's unsubscribe")
	b.Unsubscribe(ch)
	eventually(t, 2*time.Second, func() bool { return redistest.NumSub(t, admin, ch, false) == 0 }, "NUMSUB 0 after both unsubscribed")
	if s := a.Stats(); s.SubscribedChannels != 1 { // the instance channel
		t.Fatalf("a still counts %d subscribed channels, want 1 (its own)", s.SubscribedChannels)
	}
}

// Many Subscribe calls at once travel in a few SUBSCRIBE commands.
func TestSubscribeBatched(t *testing.T) {
	srv := redistest.Start(t)
	b, sink := startBroker(t, Config{URL: srv.URL(), SubscribeBatch: 100})
	admin := srv.Client()
	before := redistest.CommandCalls(t, admin, "subscribe")
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		b.Subscribe("c"+strconv.Itoa(i), func(err error) { errs <- err; wg.Done() })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	calls := redistest.CommandCalls(t, admin, "subscribe") - before
	t.Logf("%d channels subscribed with %d SUBSCRIBE commands", n, calls)
	if calls > 30 || calls < n/100 {
		t.Fatalf("%d SUBSCRIBE commands for %d channels: not batched (batch size 100)", calls, n)
	}
	for _, i := range []int{0, 499, 999} {
		if got := redistest.NumSub(t, admin, "c"+strconv.Itoa(i), false); got != 1 {
			t.Fatalf("NUMSUB c%d = %d", i, got)
		}
	}
	must(t, publish(t, b, "c999", `"x"`))
	eventually(t, 2*time.Second, func() bool { return sink.has("c999", `"x"`) }, "delivery on c999")

	for i := range n {
		b.Unsubscribe("c" + strconv.Itoa(i))
	}
	eventually(t, 2*time.Second, func() bool { return b.Stats().SubscribedChannels == 1 }, "all unsubscribed")
	if got := redistest.NumSub(t, admin, "c499", false); got != 0 {
		t.Fatalf("NUMSUB c499 = %d after unsubscribe", got)
	}
}

// Subscribe/Unsubscribe churn on one channel settles on the last call, and
// every done is called exactly once.
func TestSubscribeChurn(t *testing.T) {
	srv := redistest.Start(t)
	b, _ := startBroker(t, Config{URL: srv.URL()})
	admin := srv.Client()
	var mu sync.Mutex
	calls := 0
	for i := range 100 {
		b.Subscribe("churn", func(err error) {
			if err != nil {
				t.Errorf("subscribe %d: %v", i, err)
			}
			mu.Lock()
			calls++
			mu.Unlock()
		})
		if i < 99 {
			b.Unsubscribe("churn")
		}
	}
	eventually(t, 2*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return calls == 100 }, "every done called")
	eventually(t, 2*time.Second, func() bool { return redistest.NumSub(t, admin, "churn", false) == 1 }, "final state subscribed")
	// A marker subscribe of the same channel: every done is called by the
	// shard's goroutine, one sync round after the other, from the channel's
	// list of waiters in order, so the marker's comes after every earlier
	// round's and after any stale waiter of its own round (a done called
	// twice would have been counted by then).
	b.Unsubscribe("churn")
	marker := make(chan int, 1)
	b.Subscribe("churn", func(err error) {
		if err != nil {
			t.Errorf("marker subscribe: %v", err)
		}
		mu.Lock()
		select {
		case marker <- calls:
		default:
			t.Errorf("the marker's done called twice")
		}
		mu.Unlock()
	})
	select {
	case n := <-marker:
		if n != 100 {
			t.Fatalf("done called %d times for 100 subscribes", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the marker subscribe was not confirmed")
	}
	eventually(t, 2*time.Second, func() bool { return redistest.NumSub(t, admin, "churn", false) == 1 }, "subscribed after the marker")
	b.Unsubscribe("churn")
	eventually(t, 2*time.Second, func() bool { return redistest.NumSub(t, admin, "churn", false) == 0 }, "final unsubscribe")
}

// Internal channels cannot be subscribed through the hub API, and nothing works before Start.
func TestSubscribeRefusals(t *testing.T) {
	srv := redistest.Start(t)
	b, err := New(fastConfig(Config{URL: srv.URL(), InstanceID: "x"}))
	must(t, err)
	defer b.Close()
	if err := subscribe(t, b, "room"); err != hub.ErrUnavailable {
		t.Fatalf("subscribe before Start: %v", err)
	}
	if err := publish(t, b, "room", "1"); err != hub.ErrUnavailable {
		t.Fatalf("publish before Start: %v", err)
	}
	must(t, b.Start(newRecSink()))
	eventually(t, 5*time.Second, b.Ready, "ready")
	if err := subscribe(t, b, "ws#inst:x"); err != hub.ErrUnavailable {
		t.Fatalf("subscribe to an internal channel: %v", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without URL or cluster accepted")
	}
	if _, err := New(Config{URL: srv.URL(), InstanceID: "bad id"}); err == nil || errors.Is(err, ErrUnreachable) {
		t.Fatalf("instance id with a space: %v", err)
	}
}

// A Redis that is not there is told apart from a bad configuration, so a
// gateway can wait for it.
func TestNewUnreachable(t *testing.T) {
	port := redistest.FreePort(t, false)
	_, err := New(Config{URL: "redis://127.0.0.1:" + strconv.Itoa(port), DialTimeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("New on a closed port: %v, want ErrUnreachable", err)
	}
	if err := ValidateURL("http://x"); err == nil {
		t.Fatal("ValidateURL accepted http://x")
	}
	if err := ValidateURL("redis://127.0.0.1:1/2"); err != nil {
		t.Fatalf("ValidateURL: %v", err)
	}
	if !errors.Is(ErrNotFound, hub.ErrNotFound) {
		t.Fatal("ErrNotFound does not match hub.ErrNotFound")
	}
}

// Hub-like callers (strict Subscribe/Unsubscribe alternation per channel,
// Unsubscribe after a failed Subscribe) churning while the pub/sub connection
// is killed repeatedly: every done comes exactly once, and the end state in
// Redis is exactly what the callers want.
func TestChurnDuringReconnects(t *testing.T) {
	srv := redistest.Start(t)
	b, _ := startBroker(t, Config{URL: srv.URL()})
	admin := srv.Client()
	const chans = 40
	var failures, successes atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch := "churn:" + strconv.Itoa(i)
			stopping := false
			for tries := 0; ; tries++ {
				select {
				case <-stop:
					stopping = true
				default:
				}
				err := subscribe(t, b, ch)
				if err == nil {
					successes.Add(1)
					if stopping {
						return // stay subscribed
					}
				}
				b.Unsubscribe(ch) // after a failure too, as the hub does
				if err != nil {
					failures.Add(1)
					time.Sleep(10 * time.Millisecond) // pace retries while the connection is down
				}
				if stopping && tries > 10000 {
					t.Errorf("%s never got subscribed", ch)
					return
				}
			}
		}()
	}
	// Each kill hits a live connection in the middle of the churn: since
	// the last reconnect the callers have subscribed a channel's worth of
	// times and the broker has sent as many SUBSCRIBEs (the churn goes
	// through Redis), then the kill, then the broker is back (a reconnect
	// counted). The last round is churn on a settled connection.
	churned := func(what string) {
		t.Helper()
		subs, cmds := successes.Load(), b.Stats().SubscribeCommands
		eventually(t, 5*time.Second, func() bool {
			return successes.Load() >= subs+chans && b.Stats().SubscribeCommands >= cmds+chans
		}, what)
	}
	for k := range 5 {
		churned(fmt.Sprintf("churn before kill %d", k+1))
		before := b.Stats().Reconnects
		if n, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub").AsInt64(); err != nil || n < 1 {
			t.Fatalf("kill %d: CLIENT KILL TYPE pubsub: %d %v", k+1, n, err)
		}
		eventually(t, 5*time.Second, func() bool { return b.Stats().Reconnects > before && b.Ready() }, fmt.Sprintf("reconnected after kill %d", k+1))
	}
	churned("churn on a settled connection")
	close(stop)
	wg.Wait()
	eventually(t, 3*time.Second, func() bool {
		for i := range chans {
			if redistest.NumSub(t, admin, "churn:"+strconv.Itoa(i), false) != 1 {
				return false
			}
		}
		return b.Ready()
	}, "every channel subscribed exactly once")
	if got := b.Stats().SubscribedChannels; got != chans+1 {
		t.Fatalf("broker counts %d subscribed channels, want %d", got, chans+1)
	}
	st := b.Stats()
	t.Logf("%d reconnects, %d subscribe failures seen by the callers, %d SUBSCRIBE commands", st.Reconnects, failures.Load(), st.SubscribeCommands)
	if st.Reconnects < 5 || failures.Load() == 0 {
		t.Fatal("the kills did not hit the churn")
	}
}
