package hub

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
)

// goHub builds a hub over n goroutine-backed loops.
func goHub(t testing.TB, b Broker, n int) (*Hub, []*goLoop) {
	t.Helper()
	loops := make([]*goLoop, n)
	posters := make([]Poster, n)
	for i := range loops {
		loops[i] = newGoLoop()
		posters[i] = loops[i]
	}
	t.Cleanup(func() {
		for _, l := range loops {
			l.stop()
		}
	})
	h := New(Config{}, b, posters)
	if err := b.Start(h); err != nil {
		t.Fatal(err)
	}
	return h, loops
}

func syncAll(loops []*goLoop) {
	for _, l := range loops {
		l.sync()
	}
}

// Loops subscribing and leaving the same channels at the same time cause
// exactly one Subscribe and one Unsubscribe per channel.
func TestLazySubscribeExactlyOnceConcurrent(t *testing.T) {
	b := newFakeBroker()
	const nloops, perLoop, nchan = 8, 40, 5
	h, loops := goHub(t, b, nloops)
	conns := make([][]*fakeConn, nloops)
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		for li, l := range loops {
			wg.Add(1)
			l.Post(func() {
				defer wg.Done()
				for i := 0; i < perLoop; i++ {
					c := &fakeConn{id: uint64(li*perLoop + i), loop: li, count: true}
					h.OnOpen(c)
					conns[li] = append(conns[li], c)
					for ch := 0; ch < nchan; ch++ {
						h.OnText(c, fmt.Appendf(nil, `{"op":"subscribe","channel":"c%d"}`, ch))
					}
				}
			})
		}
		wg.Wait()
		syncAll(loops)
		if got := h.table.members.Load(); got != nloops*perLoop*nchan {
			t.Fatalf("%d subscriptions, want %d", got, nloops*perLoop*nchan)
		}
		for li, l := range loops {
			wg.Add(1)
			l.Post(func() {
				defer wg.Done()
				for i, c := range conns[li] {
					if i%2 == 0 {
						h.OnClose(c)
						continue
					}
					for ch := 0; ch < nchan; ch++ {
						h.OnText(c, fmt.Appendf(nil, `{"op":"unsubscribe","channel":"c%d"}`, ch))
					}
				}
				conns[li] = nil
			})
		}
		wg.Wait()
		syncAll(loops)
		calls := b.takeCalls()
		count := map[string]int{}
		for _, c := range calls {
			count[c]++
		}
		for ch := 0; ch < nchan; ch++ {
			if count[fmt.Sprintf("sub c%d", ch)] != 1 || count[fmt.Sprintf("unsub c%d", ch)] != 1 {
				t.Fatalf("round %d: broker calls %v, want one sub and one unsub per channel", round, calls)
			}
		}
		if v := b.violations(); len(v) > 0 {
			t.Fatal(v)
		}
		if err := checkSubTable(h.table); err != nil {
			t.Fatal(err)
		}
		if n := h.table.channels.Load(); n != 0 {
			t.Fatalf("%d channels left", n)
		}
	}
}

// fireAny completes one held Subscribe of a random channel, failing it with
// probability pfail; false when none is held.
func (b *fakeBroker) fireAny(rng *rand.Rand, pfail float64) bool {
	b.mu.Lock()
	var chans []string
	for ch, q := range b.pending {
		if len(q) > 0 {
			chans = append(chans, ch)
		}
	}
	if len(chans) == 0 {
		b.mu.Unlock()
		return false
	}
	ch := chans[rng.IntN(len(chans))]
	done := b.pending[ch][0]
	b.pending[ch] = b.pending[ch][1:]
	b.mu.Unlock()
	var err error
	if rng.Float64() < pfail {
		err = ErrUnavailable
	}
	done(err)
	return true
}

// Random churn on many loops against a broker that answers late and
// sometimes fails: broker calls never double up, every subscribe with an id
// is answered exactly once, and everything is released at the end.
func TestLazyChurnWithFailingBroker(t *testing.T) {
	b := newFakeBroker()
	b.hold = true
	const nloops, perLoop, nchan, ops, batchOps = 6, 4, 12, 300, 5
	h, loops := goHub(t, b, nloops)

	stop := make(chan struct{})
	firer := make(chan struct{})
	go func() { // the broker's goroutine answering Subscribes
		defer close(firer)
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-stop:
				return
			default:
			}
			if !b.fireAny(rng, 0.5) {
				runtime.Gosched()
			}
		}
	}()

	type sent struct {
		subs map[uint64]bool // ids of subscribes sent
	}
	conns := make([][]*fakeConn, nloops)
	books := make([][]sent, nloops)
	rngs := make([]*rand.Rand, nloops)
	for li := range loops {
		rngs[li] = rand.New(rand.NewPCG(uint64(li), 9))
		for i := 0; i < perLoop; i++ {
			c := &fakeConn{id: uint64(li*100 + i), loop: li}
			loops[li].do(func() { h.OnOpen(c) })
			conns[li] = append(conns[li], c)
			books[li] = append(books[li], sent{subs: map[uint64]bool{}})
		}
	}
	// Small batches, so that the broker's answers interleave with the churn.
	var wg sync.WaitGroup
	for batch := 0; batch < ops/batchOps; batch++ {
		for li, l := range loops {
			wg.Add(1)
			l.Post(func() {
				defer wg.Done()
				rng := rngs[li]
				for n := batch * batchOps; n < (batch+1)*batchOps; n++ {
					i := rng.IntN(perLoop)
					c, bk := conns[li][i], &books[li][i]
					id := uint64(n + 1)
					ch := rng.IntN(nchan)
					if rng.IntN(2) == 0 {
						bk.subs[id] = true
						h.OnText(c, fmt.Appendf(nil, `{"op":"subscribe","channel":"c%d","id":%d}`, ch, id))
					} else {
						h.OnText(c, fmt.Appendf(nil, `{"op":"unsubscribe","channel":"c%d","id":%d}`, ch, id))
					}
				}
			})
		}
		wg.Wait()
	}
	close(stop)
	<-firer
	// Answer everything still held, including Subscribes caused by answers.
	rng := rand.New(rand.NewPCG(3, 4))
	for {
		syncAll(loops)
		if !b.fireAny(rng, 0.5) {
			syncAll(loops)
			if !b.fireAny(rng, 0.5) {
				break
			}
		}
	}
	if v := b.violations(); len(v) > 0 {
		t.Fatal(v)
	}
	var oks, unavailable int
	for li, l := range loops {
		l.do(func() {
			for i, c := range conns[li] {
				replies := map[uint64]int{}
				for _, f := range c.take() {
					var m struct {
						Op   string
						ID   *uint64
						Code int
					}
					if err := json.Unmarshal([]byte(f), &m); err != nil || m.ID == nil {
						t.Errorf("bad reply %q", f)
						continue
					}
					switch {
					case m.Op == "ok":
						oks++
					case m.Op == "error" && m.Code == 503:
						unavailable++
					case m.Op != "error" || m.Code != 404:
						t.Errorf("unexpected reply %s", f)
					}
					replies[*m.ID]++
				}
				for id := range books[li][i].subs {
					if replies[id] != 1 {
						t.Errorf("loop %d conn %d: subscribe %d answered %d times", li, i, id, replies[id])
					}
				}
			}
		})
	}
	t.Logf("%d ok, %d unavailable", oks, unavailable)
	if oks == 0 || unavailable == 0 {
		t.Fatalf("the churn exercised too little: %d ok, %d unavailable", oks, unavailable)
	}
	if err := checkSubTable(h.table); err != nil {
		t.Fatal(err)
	}
	for li, l := range loops {
		l.do(func() {
			for _, c := range conns[li] {
				h.OnClose(c)
			}
		})
	}
	for b.fireAny(rng, 0) {
	}
	syncAll(loops)
	b.mu.Lock()
	for ch, n := range b.subs {
		if n != 0 {
			t.Errorf("channel %s left subscribed at the broker (%d)", ch, n)
		}
	}
	b.mu.Unlock()
	if n, m := h.table.channels.Load(), h.table.members.Load(); n != 0 || m != 0 {
		t.Fatalf("%d channels, %d subscriptions left after every conn closed", n, m)
	}
}
