package eventloop

import (
	"sync"
	"testing"
	"time"
)

// Posts made while the loop is busy share one wake-up.
func TestPostsCoalesce(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, Config{Loops: 1}, h)
	dialWS(t, s, "/ws") // binds the loop
	l := s.Loops()[0]
	eventually(t, 2*time.Second, "loop bound", l.bound)

	block, blocked := make(chan struct{}), make(chan struct{})
	l.Post(func() { close(blocked); <-block })
	<-blocked
	before := l.stats.batches.Load()
	ran := 0 // touched on the loop only
	inc := func() { ran++ }
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 250 {
				l.Post(inc)
			}
		}()
	}
	wg.Wait()
	close(block)
	done := make(chan int)
	l.Post(func() { done <- ran })
	if n := <-done; n != 2000 {
		t.Fatalf("%d of 2000 posted functions ran", n)
	}
	if b := l.stats.batches.Load() - before; b > 2 {
		t.Fatalf("2001 posts made while the loop was busy took %d wake-ups", b)
	}
}

// Many goroutines posting while the loop runs: every post runs exactly
// once, in each poster's order (run with -race).
func TestPostFromManyGoroutines(t *testing.T) {
	s := startServer(t, Config{Loops: 2}, newTestHandler())
	dialUntilBound(t, s)
	const posters, each = 8, 500
	last := make([][posters]int, len(s.Loops())) // per loop, touched on that loop only
	var wg sync.WaitGroup
	for p := range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= each; i++ {
				for li, l := range s.Loops() {
					l.Post(func() {
						if last[li][p] != i-1 {
							t.Errorf("loop %d poster %d: post %d ran after %d", li, p, i, last[li][p])
						}
						last[li][p] = i
					})
				}
			}
		}()
	}
	wg.Wait()
	for li, l := range s.Loops() {
		done := make(chan struct{})
		l.Post(func() { close(done) })
		<-done
		for p, n := range last[li] {
			if n != each {
				t.Fatalf("loop %d poster %d: %d of %d posts ran", li, p, n, each)
			}
		}
	}
}

// Posts to a loop no connection has bound yet wait for it.
func TestPostBeforeBind(t *testing.T) {
	s := startServer(t, Config{Loops: 2}, newTestHandler())
	ran := make(chan int, 2)
	for _, l := range s.Loops() {
		l.Post(func() { ran <- l.idx })
	}
	// Each post waits in its loop's queue: nothing has taken it out to run.
	for _, l := range s.Loops() {
		l.mu.Lock()
		queued, bound := len(l.q), l.gel != nil
		l.mu.Unlock()
		if bound || queued != 1 {
			t.Fatalf("loop %d before any connection: bound %v, %d posts queued, want 1", l.idx, bound, queued)
		}
	}
	select {
	case i := <-ran:
		t.Fatalf("loop %d ran a post before it was bound", i)
	default:
	}
	dialUntilBound(t, s)
	seen := map[int]bool{}
	for range 2 {
		select {
		case i := <-ran:
			seen[i] = true
		case <-time.After(2 * time.Second):
			t.Fatalf("posts made before binding did not run (ran: %v)", seen)
		}
	}
	if len(seen) != 2 {
		t.Fatalf("ran on loops %v", seen)
	}
}

// Post of a cached func value allocates nothing once the queue has grown.
func TestPostDoesNotAllocate(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Loops: 1, Logger: quietLogger()}, newTestHandler())
	if err != nil {
		t.Fatal(err)
	}
	l := s.loops[0] // never bound: posts queue up
	fn := func() {}
	for range 1000 {
		l.Post(fn)
	}
	l.q = l.q[:0]
	if a := testing.AllocsPerRun(100, func() { l.Post(fn) }); a != 0 {
		t.Fatalf("Post allocates %v times", a)
	}
}
