package main

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/wshub/wshub/wsproto/wstest"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wshub/wshub/redis/redistest"
)

// steadyPublisher publishes {"n":i} with id i on one channel every period
// from its own connection, and records each publish's outcome.
type steadyPublisher struct {
	cl   *client
	stop chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	sentAt map[int]time.Time
	code   map[int]int // 0: ok, else the error code
}

func startSteady(t *testing.T, addr, channel string, period time.Duration) *steadyPublisher {
	p := &steadyPublisher{cl: dial(t, addr), stop: make(chan struct{}), sentAt: map[int]time.Time{}, code: map[int]int{}}
	p.wg.Add(2)
	go func() { // writer
		defer p.wg.Done()
		tk := time.NewTicker(period)
		defer tk.Stop()
		for i := 1; ; i++ {
			select {
			case <-p.stop:
				return
			case <-tk.C:
			}
			p.mu.Lock()
			p.sentAt[i] = time.Now()
			p.mu.Unlock()
			msg := fmt.Sprintf(`{"op":"publish","channel":%q,"data":{"n":%d},"id":%d}`, channel, i, i)
			p.cl.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := p.cl.Conn.Write(wstest.Frame(ws.OpText, true, true, []byte(msg))); err != nil {
				return
			}
		}
	}()
	go func() { // reader
		defer p.wg.Done()
		for {
			p.cl.Conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			f, err := wstest.ReadFrame(p.cl.Reader)
			if err != nil {
				return
			}
			var m struct {
				Op   string
				ID   int
				Code int
			}
			if f.Header.OpCode != ws.OpText || json.Unmarshal(f.Payload, &m) != nil {
				continue
			}
			p.mu.Lock()
			p.code[m.ID] = m.Code
			p.mu.Unlock()
		}
	}()
	return p
}

// accepted counts the publishes sent after since that were answered ok.
func (p *steadyPublisher) accepted(since time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for i, at := range p.sentAt {
		if c, answered := p.code[i]; answered && c == 0 && at.After(since) {
			n++
		}
	}
	return n
}

// finish stops publishing and waits (a bounded time) for every answer.
func (p *steadyPublisher) finish(t *testing.T) (sentAt map[int]time.Time, code map[int]int) {
	close(p.stop)
	eventually(t, 5*time.Second, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.code) >= len(p.sentAt)
	}, "answers to every steady publish")
	p.cl.Conn.Close()
	p.wg.Wait()
	return p.sentAt, p.code
}

// recoveryChannels are subscribed on both gateways besides the steady channel.
const recoveryChannels = 50

// runRecovery breaks Redis under steady publishing and checks the gateways
// come back: /readyz 503 during an outage (when outage is set) and 200 after,
// client and API publishes 503 meanwhile, every channel resubscribed within
// 2 s of Redis being usable again (restore returns when that is), every
// publish accepted after that delivered to every subscriber, in order, and
// no goroutine left behind.
func runRecovery(t *testing.T, srv *redistest.Server, outage bool, breakRedis func(), restore func() time.Time) {
	a := startRedisGateway(t, srv.URL(), "rec-a")
	b := startRedisGateway(t, srv.URL(), "rec-b")
	admin := srv.Client()
	chans := []string{"steady"}
	for i := range recoveryChannels {
		chans = append(chans, "rc:"+strconv.Itoa(i))
	}
	subs := []*client{dial(t, a.addr), dial(t, b.addr)}
	for _, s := range subs {
		s.subscribe(chans...)
	}
	allSubscribed := func() bool {
		// Not redistest.NumSubs: the admin connection may have just died with Redis.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		v, err := admin.Do(ctx, admin.B().PubsubNumsub().Channel(chans...).Build()).ToArray()
		if err != nil || len(v) != 2*len(chans) {
			return false
		}
		for i := 1; i < len(v); i += 2 {
			if n, _ := v[i].AsInt64(); n != 2 {
				return false
			}
		}
		return true
	}
	eventually(t, 2*time.Second, allSubscribed, "every channel subscribed by both gateways")
	goroutines := a.metric("go_goroutines")

	pub := startSteady(t, b.addr, "steady", 10*time.Millisecond)
	eventually(t, 5*time.Second, func() bool { return pub.accepted(time.Time{}) >= 10 }, "steady traffic before the failure")
	breakRedis()
	if outage {
		for _, g := range []*gateway{a, b} {
			g.waitReady(503, 3*time.Second)
		}
		probe := dial(t, b.addr)
		if m := probe.call(map[string]any{"op": "publish", "channel": "steady", "data": "x"}); m["op"] != "error" || m["code"] != 503.0 {
			t.Fatalf("client publish during the outage: %v", m)
		}
		if code, body := a.post("/api/publish", `{"channel":"steady","data":"x"}`); code != 503 {
			t.Fatalf("API publish during the outage: %d %s", code, body)
		}
	}
	back := restore()
	eventually(t, 5*time.Second, func() bool { return a.readyz() == 200 && b.readyz() == 200 && allSubscribed() }, "recovery")
	took := time.Since(back)
	t.Logf("resubscribed %d channels on 2 gateways and ready %v after Redis was back", len(chans), took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Fatalf("resubscription took %v, want within 2s", took)
	}
	recovered := time.Now()
	eventually(t, 5*time.Second, func() bool { return pub.accepted(recovered) >= 20 }, "steady traffic after recovery")
	sentAt, code := pub.finish(t)

	var failed, after []int
	for i, c := range code {
		if c != 0 {
			failed = append(failed, i)
		} else if sentAt[i].After(recovered) {
			after = append(after, i)
		}
	}
	sort.Ints(after)
	t.Logf("steady publishes: %d sent, %d failed (503), %d accepted after recovery", len(sentAt), len(failed), len(after))
	if outage && len(failed) == 0 {
		t.Fatal("no client publish failed during the outage")
	}
	if len(after) < 10 {
		t.Fatalf("only %d publishes accepted after recovery", len(after))
	}

	// An end marker, then every subscriber's view of the steady channel.
	if code, body := a.post("/api/publish", `{"channel":"steady","data":{"n":0}}`); code != 200 {
		t.Fatalf("end marker: %d %s", code, body)
	}
	for k, s := range subs {
		got := map[int]bool{}
		last := 0
		for {
			m := s.msg()
			d, _ := m["data"].(map[string]any)
			if m["op"] != "message" || m["channel"] != "steady" || d == nil {
				t.Fatalf("subscriber %d: unexpected %v", k, m)
			}
			n := int(d["n"].(float64))
			if n == 0 {
				break
			}
			if n <= last {
				t.Fatalf("subscriber %d: %d after %d", k, n, last)
			}
			last = n
			got[n] = true
		}
		for _, i := range after {
			if !got[i] {
				t.Fatalf("subscriber %d: publish %d, accepted after recovery, never arrived", k, i)
			}
		}
	}
	// Every other channel delivers again too.
	for _, ch := range chans[1:] {
		b.post("/api/publish", fmt.Sprintf(`{"channel":%q,"data":%q}`, ch, ch))
	}
	for k, s := range subs {
		for _, ch := range chans[1:] {
			if m := s.msg(); m["channel"] != ch || m["data"] != ch {
				t.Fatalf("subscriber %d after recovery: %v, want %s", k, m, ch)
			}
		}
	}
	eventually(t, 5*time.Second, func() bool { return a.metric("go_goroutines") <= goroutines+2 },
		fmt.Sprintf("goroutines back to %v", goroutines))
}

func TestRedisKilledAndRestarted(t *testing.T) {
	srv := redistest.Start(t)
	runRecovery(t, srv, true, srv.Kill, func() time.Time {
		time.Sleep(500 * time.Millisecond) // an outage, not a blip
		srv.Start()
		return time.Now()
	})
}

func TestRedisPubSubConnectionsKilled(t *testing.T) {
	srv := redistest.Start(t)
	runRecovery(t, srv, false, func() {
		if n, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub").AsInt64(); err != nil || n < 2 {
			t.Fatalf("CLIENT KILL TYPE pubsub: %d %v", n, err)
		}
	}, time.Now)
}

func TestRedisStalled(t *testing.T) {
	srv := redistest.Start(t)
	runRecovery(t, srv, true, func() { srv.Signal(syscall.SIGSTOP) }, func() time.Time {
		time.Sleep(300 * time.Millisecond) // stalled past the probe's verdict
		srv.Signal(syscall.SIGCONT)
		return time.Now()
	})
}
