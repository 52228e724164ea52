package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wshub/wshub/wsproto"
)

// Concurrent publishers on several loops and the HTTP API: every subscriber
// on every loop sees the same sequence, and each publisher's messages in the
// order it sent them.
func TestFanoutSameOrderOnAllLoops(t *testing.T) {
	const nloops, subsPerLoop, perPub, apiPubs = 4, 10, 150, 100
	h, loops := goHub(t, NewMemoryBroker(), nloops)
	var subs []*fakeConn
	for li, l := range loops {
		for i := 0; i < subsPerLoop; i++ {
			c := &fakeConn{id: uint64(li*100 + i), loop: li}
			subs = append(subs, c)
			l.do(func() {
				h.OnOpen(c)
				h.OnText(c, []byte(`{"op":"subscribe","channel":"feed","id":1}`))
			})
		}
	}
	syncAll(loops)
	for _, c := range subs {
		if got := c.take(); len(got) != 1 || got[0] != `{"op":"ok","id":1}` {
			t.Fatalf("subscribe answer %q", got)
		}
	}

	var wg sync.WaitGroup
	for li, l := range loops { // one publishing connection per loop
		pub := &fakeConn{id: 1000 + uint64(li), loop: li, count: true}
		l.do(func() { h.OnOpen(pub) })
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perPub; i++ {
				msg := fmt.Appendf(nil, `{"op":"publish","channel":"feed","data":{"p":%d,"i":%d}}`, li, i)
				l.Post(func() { h.OnText(pub, msg) })
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < apiPubs; i++ {
			if _, err := h.Publish(context.Background(), "feed", fmt.Appendf(nil, `{"p":%d,"i":%d}`, nloops, i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	syncAll(loops) // every publish ran and queued its fan-out ...
	syncAll(loops) // ... which has run now

	total := nloops*perPub + apiPubs
	var first []string
	for k, c := range subs {
		got := c.take()
		if len(got) != total {
			t.Fatalf("subscriber %d got %d messages, want %d", k, len(got), total)
		}
		if k == 0 {
			first = got
			next := make([]int, nloops+1)
			for _, f := range got {
				var m struct {
					Op, Channel string
					Data        struct{ P, I int }
				}
				if err := json.Unmarshal([]byte(f), &m); err != nil || m.Op != "message" || m.Channel != "feed" {
					t.Fatalf("bad message %q: %v", f, err)
				}
				if m.Data.I != next[m.Data.P] {
					t.Fatalf("publisher %d: message %d arrived when %d was due", m.Data.P, m.Data.I, next[m.Data.P])
				}
				next[m.Data.P]++
			}
			continue
		}
		for j := range got {
			if got[j] != first[j] {
				t.Fatalf("subscriber %d saw message %d as %s, subscriber 0 as %s", k, j, got[j], first[j])
			}
		}
	}
}

// Bursts coalesce: many Delivers before the loop runs cost one Post.
func TestFanoutOnePostPerBurst(t *testing.T) {
	b := newFakeBroker()
	h, loops := testHub(t, b, 2, Config{})
	for i := 0; i < 5; i++ {
		c := &fakeConn{loop: i % 2, count: true}
		h.OnOpen(c)
		h.OnText(c, []byte(`{"op":"subscribe","channel":"x"}`))
	}
	runAll(loops)
	for i := 0; i < 100; i++ {
		h.Deliver("x", []byte("1"))
	}
	for i, l := range loops {
		if n := len(l.q); n != 1 {
			t.Fatalf("loop %d: %d posts for a burst of 100, want 1", i, n)
		}
	}
	runAll(loops)
	h.Deliver("nobody-here", []byte("1"))
	for i, l := range loops {
		if n := len(l.q); n != 0 {
			t.Fatalf("loop %d: posted for a channel without subscribers", i)
		}
	}
}

// frameAllocs is what wsproto itself allocates per BuildFrame+Release.
func frameAllocs() float64 {
	return testing.AllocsPerRun(1000, func() {
		f, p := wsproto.BuildFrame(ws.OpText, 64)
		p[0] = 0
		f.Retain()
		f.Release()
		f.Release()
	})
}

// fanoutFixture is a hub over queue loops with n counting subscribers of "ch".
func fanoutFixture(t testing.TB, nloops, n int) (*Hub, []*queueLoop, []*fakeConn) {
	h, loops := testHub(t, NewMemoryBroker(), nloops, Config{})
	conns := make([]*fakeConn, n)
	for i := range conns {
		c := &fakeConn{id: uint64(i), loop: i % nloops, count: true}
		conns[i] = c
		h.OnOpen(c)
		h.OnText(c, []byte(`{"op":"subscribe","channel":"ch"}`))
	}
	runAll(loops)
	return h, loops, conns
}

// Steady-state fan-out allocates nothing in the hub: per Deliver, at most
// what wsproto spends on the frame itself.
func TestFanoutAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	const subs, batch = 1000, 1000
	h, loops, conns := fanoutFixture(t, 4, subs)
	data := []byte(`{"text":"hello","n":42}`)
	deliver := func() {
		for i := 0; i < batch; i++ {
			h.Deliver("ch", data)
		}
		runAll(loops)
	}
	deliver() // grow the inbox buffers
	perRun := testing.AllocsPerRun(5, deliver)
	perDeliver := perRun / batch
	frame := frameAllocs()
	t.Logf("allocs per Deliver (%d subscribers, 4 loops): %.3f, of which wsproto frame: %.3f", subs, perDeliver, frame)
	if hub := perDeliver - frame; hub > 0.01 {
		t.Fatalf("hub allocates %.3f per Deliver beyond the frame, want 0", hub)
	}
	if want := int64((1 + 1 + 5) * batch); conns[0].n.Load() != want { // warm-up, AllocsPerRun's own warm-up, 5 runs
		t.Fatalf("subscriber got %d frames, want %d", conns[0].n.Load(), want)
	}
}

// The publish path of a client (parse, broker, fan-out, answer) allocates
// nothing in the hub either.
func TestPublishAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	h, loops, _ := fanoutFixture(t, 2, 100)
	pub := &fakeConn{loop: 1, count: true}
	h.OnOpen(pub)
	msg := []byte(`{"op":"publish","channel":"ch","data":{"a":[1,2,3]},"id":77}`)
	run := func() {
		h.OnText(pub, msg)
		runAll(loops)
	}
	run()
	per := testing.AllocsPerRun(200, run)
	// Two frames: the message and the ok.
	if hub := per - 2*frameAllocs(); hub > 0.01 {
		t.Fatalf("publish allocates %.2f in the hub, want 0", hub)
	}
}

func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("subs=%d/loops=4", n), func(b *testing.B) {
			h, loops, _ := fanoutFixture(b, 4, n)
			data := []byte(`{"text":"hello world","n":42}`)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				h.Deliver("ch", data)
				if i%16 == 15 {
					runAll(loops)
				}
			}
			runAll(loops)
			el := time.Since(start)
			b.ReportMetric(float64(el.Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
		})
	}
}

// BenchmarkPublishCommand is a client publish end to end in the hub: parse,
// memory broker, fan-out to 100 subscribers on 2 loops, ok to the publisher.
func BenchmarkPublishCommand(b *testing.B) {
	h, loops, _ := fanoutFixture(b, 2, 100)
	pub := &fakeConn{loop: 1, count: true}
	h.OnOpen(pub)
	msg := []byte(`{"op":"publish","channel":"ch","data":{"text":"hello world","n":42},"id":77}`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.OnText(pub, msg)
		if i%16 == 15 {
			runAll(loops)
		}
	}
	runAll(loops)
}

// BenchmarkSubscribe measures a subscription's cost: each op opens a
// connection and subscribes it (to one shared channel, or to a channel of
// its own); B/op is the memory a subscription costs, slice growth included.
func BenchmarkSubscribe(b *testing.B) {
	for _, shared := range []bool{true, false} {
		name := "own-channel"
		if shared {
			name = "shared-channel"
		}
		b.Run(name, func(b *testing.B) {
			h, loops := testHub(b, NewMemoryBroker(), 4, Config{})
			conns := make([]fakeConn, b.N)
			msgs := make([][]byte, b.N)
			for i := range msgs {
				if shared {
					msgs[i] = []byte(`{"op":"subscribe","channel":"room"}`)
				} else {
					msgs[i] = fmt.Appendf(nil, `{"op":"subscribe","channel":"room:%d"}`, i)
				}
				conns[i] = fakeConn{id: uint64(i), loop: i % 4, count: true}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range conns {
				c := &conns[i]
				h.OnOpen(c)
				h.OnText(c, msgs[i])
				if i%64 == 63 {
					runAll(loops)
				}
			}
			runAll(loops)
		})
	}
}

// BenchmarkSubscribeFlood is one client subscribing to b.N new channels:
// with the cap, ns/op stays flat as b.N grows (-benchtime=10000x vs 40000x);
// without it every subscribe scanned all earlier ones (quadratic).
func BenchmarkSubscribeFlood(b *testing.B) {
	h, loops := testHub(b, NewMemoryBroker(), 1, Config{})
	msgs := make([][]byte, b.N)
	for i := range msgs {
		msgs[i] = fmt.Appendf(nil, `{"op":"subscribe","channel":"room:%d","id":%d}`, i, i)
	}
	c := &fakeConn{count: true}
	h.OnOpen(c)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range msgs {
		h.OnText(c, msgs[i])
		if i%64 == 63 {
			runAll(loops)
		}
	}
	runAll(loops)
	b.StopTimer()
	h.OnClose(c)
}
