package redis

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wshub/wshub/hub"

	"github.com/wshub/wshub/redis/redistest"
)

// steadyPublisher publishes a numbered message every few milliseconds until stopped.
type steadyPublisher struct {
	ok, failed atomic.Int64
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startSteady(b *Broker, channel string) *steadyPublisher {
	p := &steadyPublisher{stop: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			b.Publish(channel, []byte(strconv.Itoa(i)), func(err error) {
				if err != nil {
					p.failed.Add(1)
				} else {
					p.ok.Add(1)
				}
			})
		}
	}()
	return p
}

func (p *steadyPublisher) halt() { close(p.stop); p.wg.Wait() }

const recoveryChannels = 200

// recoveryScenario subscribes a broker to many channels under steady
// publishing, breaks the pub/sub connection with breakFn, and checks that it
// becomes unready (when wantUnready), then ready, with every channel
// resubscribed within 2 s of Redis being usable again (restoreFn returns that
// moment), messages flowing, and no goroutine left after Close.
func recoveryScenario(t *testing.T, srv *redistest.Server, wantUnready bool, breakFn func(), restoreFn func() time.Time) {
	base := runtime.NumGoroutine()
	b, err := New(fastConfig(Config{URL: srv.URL(), InstanceID: "rec", Logger: testLogger(t)}))
	must(t, err)
	sink := newRecSink()
	must(t, b.Start(sink))
	eventually(t, 5*time.Second, b.Ready, "ready")
	for i := range recoveryChannels {
		must(t, subscribe(t, b, "ch:"+strconv.Itoa(i)))
	}
	must(t, subscribe(t, b, "steady"))
	steady := startSteady(b, "steady")
	eventually(t, 2*time.Second, func() bool { return len(sink.get("steady")) > 10 }, "steady traffic")
	before := b.Stats()

	breakFn()
	if wantUnready {
		eventually(t, 3*time.Second, func() bool { return !b.Ready() }, "unready during the outage")
		if err := publish(t, b, "steady", `"down"`); err != hub.ErrUnavailable {
			t.Fatalf("publish while down: %v, want ErrUnavailable", err)
		}
		if err := subscribe(t, b, "new-while-down"); err != hub.ErrUnavailable {
			t.Fatalf("subscribe while down: %v, want ErrUnavailable", err)
		}
	}
	back := restoreFn()
	eventually(t, 5*time.Second, b.Ready, "ready again")
	admin := srv.Client()
	took := eventually(t, 5*time.Second, func() bool {
		for i := 0; i < recoveryChannels; i += 20 {
			if redistest.NumSub(t, admin, "ch:"+strconv.Itoa(i), false) != 1 {
				return false
			}
		}
		return redistest.NumSub(t, admin, "ch:"+strconv.Itoa(recoveryChannels-1), false) == 1
	}, "resubscribed")
	resub := time.Since(back)
	t.Logf("ready and resubscribed %d channels %v after Redis was back (poll took %v)", recoveryChannels+1, resub.Round(time.Millisecond), took.Round(time.Millisecond))
	if resub > 2*time.Second {
		t.Fatalf("resubscription took %v after Redis was back, want <= 2s", resub)
	}
	// Without an outage "ready again" may have passed before the broker saw
	// the kill, and Redis holds the channels a moment before the shard is up.
	eventually(t, 2*time.Second, b.Ready, "ready after resubscription")
	for i := 0; i < recoveryChannels; i += 50 {
		ch := "ch:" + strconv.Itoa(i)
		must(t, publish(t, b, ch, `"after"`))
		eventually(t, 2*time.Second, func() bool { return sink.has(ch, `"after"`) }, "delivery after recovery on "+ch)
	}
	n := len(sink.get("steady"))
	eventually(t, 2*time.Second, func() bool { return len(sink.get("steady")) > n+10 }, "steady traffic after recovery")
	steady.halt()
	after := b.Stats()
	t.Logf("stats: reconnects %d, resubscribed %d, probe failures %d, publish errors %d (steady ok %d, failed %d)",
		after.Reconnects-before.Reconnects, after.ResubscribedChannels-before.ResubscribedChannels,
		after.ProbeFailures-before.ProbeFailures, after.PublishErrors-before.PublishErrors, steady.ok.Load(), steady.failed.Load())
	if after.Reconnects <= before.Reconnects {
		t.Fatal("no reconnect counted")
	}
	if got := after.ResubscribedChannels - before.ResubscribedChannels; got < recoveryChannels+1 {
		t.Fatalf("resubscribed %d channels, want >= %d", got, recoveryChannels+1)
	}
	must(t, b.Close())
	checkGoroutines(t, base)
}

func TestRecoverKillRestart(t *testing.T) {
	srv := redistest.Start(t)
	recoveryScenario(t, srv, true, srv.Kill, func() time.Time {
		time.Sleep(500 * time.Millisecond) // a real outage, longer than the backoff
		srv.Start()
		return time.Now()
	})
}

func TestRecoverClientKillPubsub(t *testing.T) {
	srv := redistest.Start(t)
	recoveryScenario(t, srv, false, func() {
		n, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub").AsInt64()
		if err != nil || n < 1 {
			t.Fatalf("CLIENT KILL TYPE pubsub: %d %v", n, err)
		}
	}, time.Now)
}

func TestRecoverStopCont(t *testing.T) {
	srv := redistest.Start(t)
	recoveryScenario(t, srv, true, func() {
		srv.Signal(syscall.SIGSTOP)
		t.Log("SIGSTOP sent")
	}, func() time.Time {
		time.Sleep(300 * time.Millisecond) // well past the first probe failure
		srv.Signal(syscall.SIGCONT)
		t.Log("SIGCONT sent")
		return time.Now()
	})
}

// The probe alone detects a stall: with no publishing and no commands in
// flight, a SIGSTOPped Redis makes the broker unready within
// ProbeInterval+ProbeTimeout (plus a tick), and counts a probe failure.
func TestProbeDetectsStall(t *testing.T) {
	srv := redistest.Start(t)
	b, _ := startBroker(t, Config{URL: srv.URL()})
	must(t, subscribe(t, b, "quiet"))
	b.mu.Lock()
	s := b.shards[""]
	b.mu.Unlock()
	// A few probes came back (probe.ack is the last one that did).
	eventually(t, 5*time.Second, func() bool { return s.probe.ack.Load() >= 3 }, "three successful probes")
	if f := b.Stats().ProbeFailures; f != 0 {
		t.Fatalf("%d probe failures on a healthy Redis", f)
	}
	srv.Signal(syscall.SIGSTOP)
	start := time.Now()
	eventually(t, 2*time.Second, func() bool { return !b.Ready() }, "unready after the stall")
	detect := time.Since(start)
	srv.Signal(syscall.SIGCONT)
	t.Logf("stall detected after %v", detect.Round(time.Millisecond))
	if b.Stats().ProbeFailures == 0 {
		t.Fatal("no probe failure counted")
	}
	eventually(t, 5*time.Second, b.Ready, "ready after SIGCONT")
}
