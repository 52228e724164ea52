package main

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wshub/wshub/redis/redistest"
)

// History on Redis, through real gateways (issue 12's tests).

// startHistoryGateway is a gateway on Redis whose hist:* channels keep history.
func startHistoryGateway(t *testing.T, url, id string) *gateway {
	return startRedisGateway(t, url, id, "--config", writeConfig(t, historyConfig))
}

// A client drops off instance A, publications go on through A and B, it
// recovers on B: every offset once, in order, then live ones.
func TestRedisHistoryRecoverOnAnotherInstance(t *testing.T) {
	srv := redistest.Start(t)
	a := startHistoryGateway(t, srv.URL(), "hist-a")
	b := startHistoryGateway(t, srv.URL(), "hist-b")

	s := dial(t, a.addr)
	ok := s.mustOK(map[string]any{"op": "subscribe", "channel": "hist:x"})
	if ok["offset"] != 0.0 {
		t.Fatalf("ok %v: want offset 0", ok)
	}
	for i := 1; i <= 3; i++ {
		if code, body := b.post("/api/publish", fmt.Sprintf(`{"channel":"hist:x","data":%d}`, i)); code != 200 || body != fmt.Sprintf(`{"ok":true,"offset":%d}`, i) {
			t.Fatalf("publish %d on b: %d %s", i, code, body)
		}
		if m := s.msg(); m["offset"] != float64(i) {
			t.Fatalf("live %v, want offset %d", m, i)
		}
	}
	s.Conn.Close()
	for i := 4; i <= 8; i++ {
		g := a
		if i%2 == 0 {
			g = b
		}
		if code, body := g.post("/api/publish", fmt.Sprintf(`{"channel":"hist:x","data":%d}`, i)); code != 200 || body != fmt.Sprintf(`{"ok":true,"offset":%d}`, i) {
			t.Fatalf("publish %d: %d %s", i, code, body)
		}
	}
	// The epoch: what any subscribe now answers.
	e := dial(t, a.addr).mustOK(map[string]any{"op": "subscribe", "channel": "hist:x"})["epoch"].(string)

	r := dial(t, b.addr)
	ok = r.mustOK(map[string]any{"op": "subscribe", "channel": "hist:x", "since": 3, "epoch": e})
	if ok["recovered"] != true || ok["replayed"] != 5.0 || ok["offset"] != 8.0 || ok["epoch"] != e {
		t.Fatalf("recovering ok %v", ok)
	}
	for i := 4; i <= 8; i++ {
		if m := r.msg(); m["offset"] != float64(i) || m["data"] != float64(i) {
			t.Fatalf("replayed %v, want offset %d", m, i)
		}
	}
	a.post("/api/publish", `{"channel":"hist:x","data":9}`)
	if m := r.msg(); m["offset"] != 9.0 {
		t.Fatalf("live after the replay: %v", m)
	}
	r.expectQuiet()
}

// Redis killed and restarted without persistence: the stream's past is
// lost, so the epoch changes; a recovery from the old one is refused and
// live delivery goes on.
func TestRedisHistoryNewEpochAfterRestart(t *testing.T) {
	srv := redistest.Start(t)
	a := startHistoryGateway(t, srv.URL(), "epoch-a")
	for i := 1; i <= 3; i++ {
		a.post("/api/publish", `{"channel":"hist:e","data":1}`)
	}
	c := dial(t, a.addr)
	old := c.mustOK(map[string]any{"op": "subscribe", "channel": "hist:e"})["epoch"].(string)
	c.Conn.Close()
	srv.Kill()
	srv.Start()
	a.waitReady(200, 10*time.Second)
	eventually(t, 10*time.Second, func() bool {
		code, _ := a.post("/api/publish", `{"channel":"hist:e","data":"new"}`)
		return code == 200
	}, "a publish after the restart")

	d := dial(t, a.addr)
	ok := d.mustOK(map[string]any{"op": "subscribe", "channel": "hist:e", "since": 3, "epoch": old})
	if ok["recovered"] != false || ok["epoch"] == old || ok["epoch"] == "" {
		t.Fatalf("after the restart %v: want recovered false under a new epoch (old %s)", ok, old)
	}
	top := ok["offset"].(float64)
	a.post("/api/publish", `{"channel":"hist:e","data":"live"}`)
	if m := d.msg(); m["offset"] != top+1 || m["data"] != "live" {
		t.Fatalf("live after recovered:false: %v (ok offset %v)", m, top)
	}
}

// steadyStream publishes {"n":i} on channel through c every period until
// stop, and returns how many publishes were accepted.
func steadyStream(t *testing.T, c *client, channel string, period time.Duration) (stop func() int) {
	var mu sync.Mutex
	done := make(chan struct{})
	sent := 0
	go func() {
		tick := time.NewTicker(period)
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			c.sendText(fmt.Sprintf(`{"op":"publish","channel":"%s","data":{"n":%d}}`, channel, i))
			mu.Lock()
			sent++
			mu.Unlock()
		}
	}()
	return func() int {
		close(done)
		mu.Lock()
		defer mu.Unlock()
		return sent
	}
}

// runGapRepair subscribes on A to a history channel and a plain one while B
// publishes steadily on both, breaks the pub/sub connections, and checks
// that the history subscriber saw every offset once, in order.
func runGapRepair(t *testing.T, srv *redistest.Server, breakRedis, restore func()) {
	a := startHistoryGateway(t, srv.URL(), "gap-a")
	b := startHistoryGateway(t, srv.URL(), "gap-b")
	s := dial(t, a.addr)
	s.subscribe("hist:gap", "plain")
	pub := dial(t, b.addr)
	stop := steadyStream(t, pub, "hist:gap", 2*time.Millisecond)
	time.Sleep(200 * time.Millisecond) // steady traffic before the break
	breakRedis()
	restore()
	a.waitReady(200, 10*time.Second)
	b.waitReady(200, 10*time.Second)
	time.Sleep(200 * time.Millisecond) // steady traffic after it
	stop()
	// The last publication's offset, as the stream has it now.
	last := dial(t, b.addr).mustOK(map[string]any{"op": "subscribe", "channel": "hist:gap"})["offset"].(float64)
	if last < 100 {
		t.Fatalf("only %v publications: not a steady stream", last)
	}
	for want := 1.0; want <= last; want++ {
		m := s.msg()
		if m["channel"] != "hist:gap" || m["offset"] != want {
			t.Fatalf("after a pub/sub loss: got %v, want offset %v of %v", m, want, last)
		}
	}
	if n := a.metric("wshub_hub_resubscribed_total"); n < 2 {
		t.Fatalf("resubscribed_total %v: want both channels counted", n)
	}
	t.Logf("%v publications; a repaired %v, lost %v", last, a.metric("wshub_hub_history_repaired_total"), a.metric("wshub_hub_history_lost_total"))
}

func TestRedisHistoryGapRepairPubSubKilled(t *testing.T) {
	srv := redistest.Start(t)
	runGapRepair(t, srv, func() {
		if n, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub").AsInt64(); err != nil || n < 2 {
			t.Fatalf("CLIENT KILL TYPE pubsub: %d %v", n, err)
		}
	}, func() {})
}

func TestRedisHistoryGapRepairStalled(t *testing.T) {
	srv := redistest.Start(t)
	runGapRepair(t, srv, func() { srv.Signal(syscall.SIGSTOP) }, func() {
		time.Sleep(800 * time.Millisecond) // stalled past the probe's verdict
		srv.Signal(syscall.SIGCONT)
	})
}
