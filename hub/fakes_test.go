package hub

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wshub/wshub/wsproto"
)

// framePayload returns the payload of an unmasked server frame.
func framePayload(b []byte) []byte {
	n, off := int(b[1]&0x7f), 2
	switch n {
	case 126:
		n, off = int(b[2])<<8|int(b[3]), 4
	case 127:
		n = 0
		for _, c := range b[2:10] {
			n = n<<8 | int(c)
		}
		off = 10
	}
	return b[off : off+n]
}

// fakeConn records what the hub sends it. With count set it only counts
// frames (allocation tests); otherwise it keeps copies of the payloads.
type fakeConn struct {
	id     uint64
	loop   int
	data   any
	count  bool
	refuse bool

	room           int  // Room's answer; 0: plenty
	writableWanted bool // NotifyWritable was called since the last OnWritable

	closedWith uint16   // the code Close was called with, 0 before
	resumed    chan int // Resume's codes, when a test expects a deferred upgrade

	mu     sync.Mutex
	frames []string
	n      atomic.Int64
}

func (c *fakeConn) ID() uint64 { return c.id }
func (c *fakeConn) Loop() int  { return c.loop }
func (c *fakeConn) Send(f *wsproto.Frame) bool {
	c.n.Add(1)
	if !c.count {
		p := string(framePayload(f.Bytes()))
		c.mu.Lock()
		c.frames = append(c.frames, p)
		c.mu.Unlock()
	}
	return !c.refuse
}
func (c *fakeConn) Close(code uint16, reason string) { c.closedWith = code }
func (c *fakeConn) NotifyWritable()                  { c.writableWanted = true }
func (c *fakeConn) Room() int {
	if c.room == 0 {
		return 1 << 20
	}
	return c.room
}
func (c *fakeConn) SetExpiry(time.Time)      {}
func (c *fakeConn) Resume(decide func() int) { c.resumed <- decide() }
func (c *fakeConn) Data() any                { return c.data }
func (c *fakeConn) SetData(v any)            { c.data = v }

// take returns and forgets the frames received so far.
func (c *fakeConn) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.frames
	c.frames = nil
	return f
}

// takeJSON decodes the frames received so far, checking each is valid JSON.
func (c *fakeConn) takeJSON(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, f := range c.take() {
		var m map[string]any
		if err := json.Unmarshal([]byte(f), &m); err != nil {
			t.Fatalf("frame is not a JSON object: %q: %v", f, err)
		}
		out = append(out, m)
	}
	return out
}

// queueLoop is a Poster whose posted functions run when the test calls run,
// on the test's goroutine: deterministic, and it allocates nothing per Post
// once its slices have grown.
type queueLoop struct {
	mu    sync.Mutex
	q     []func()
	spare []func()
}

func (l *queueLoop) Post(fn func()) {
	l.mu.Lock()
	l.q = append(l.q, fn)
	l.mu.Unlock()
}

// run executes posted functions, including those they post, until none is left.
func (l *queueLoop) run() int {
	n := 0
	for {
		l.mu.Lock()
		q := l.q
		l.q, l.spare = l.spare[:0], nil
		l.mu.Unlock()
		if len(q) == 0 {
			l.mu.Lock()
			l.spare = q
			l.mu.Unlock()
			return n
		}
		for i, fn := range q {
			fn()
			q[i] = nil
			n++
		}
		l.mu.Lock()
		l.spare = q[:0]
		l.mu.Unlock()
	}
}

func runAll(loops []*queueLoop) {
	for again := true; again; {
		again = false
		for _, l := range loops {
			if l.run() > 0 {
				again = true
			}
		}
	}
}

// goLoop is a Poster backed by one goroutine, like a real event loop.
type goLoop struct {
	mu   sync.Mutex
	q    []func()
	wake chan struct{}
	quit chan struct{}
	done chan struct{}
}

func newGoLoop() *goLoop {
	l := &goLoop{wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go l.loop()
	return l
}

func (l *goLoop) Post(fn func()) {
	l.mu.Lock()
	l.q = append(l.q, fn)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *goLoop) loop() {
	defer close(l.done)
	var q []func()
	for {
		select {
		case <-l.wake:
		case <-l.quit:
			return
		}
		for {
			l.mu.Lock()
			q, l.q = l.q, q[:0]
			l.mu.Unlock()
			if len(q) == 0 {
				break
			}
			for i, fn := range q {
				fn()
				q[i] = nil
			}
		}
	}
}

// sync waits until everything posted before it has run.
func (l *goLoop) sync() {
	ch := make(chan struct{})
	l.Post(func() { close(ch) })
	<-ch
}

// do runs fn on the loop and waits for it.
func (l *goLoop) do(fn func()) {
	ch := make(chan struct{})
	l.Post(func() { fn(); close(ch) })
	<-ch
}

func (l *goLoop) stop() {
	close(l.quit)
	<-l.done
}

// fakeBroker records broker calls. With hold set, Subscribe keeps its done
// for the test to fire; otherwise it confirms at once. Publishes are handed
// to the sink (when started) and confirmed with pubErr.
type fakeBroker struct {
	mu      sync.Mutex
	sink    Sink
	hold    bool
	pubErr  error
	subErr  error
	calls   []string // "sub ch", "unsub ch" in call order
	pending map[string][]func(error)
	subs    map[string]int // current Subscribe minus Unsubscribe per channel
	bad     []string       // protocol violations seen (double Subscribe ...)
}

func newFakeBroker() *fakeBroker {
	return &fakeBroker{pending: map[string][]func(error){}, subs: map[string]int{}}
}

func (b *fakeBroker) Start(s Sink) error { b.mu.Lock(); b.sink = s; b.mu.Unlock(); return nil }

func (b *fakeBroker) Publish(ch string, data []byte, done func(error)) {
	b.mu.Lock()
	sink, err := b.sink, b.pubErr
	if sink != nil && err == nil {
		sink.Deliver(ch, data) // under b.mu: serialized like a real broker
	}
	b.mu.Unlock()
	done(err)
}

func (b *fakeBroker) Subscribe(ch string, done func(error)) {
	b.mu.Lock()
	b.calls = append(b.calls, "sub "+ch)
	if b.subs[ch]++; b.subs[ch] != 1 {
		b.bad = append(b.bad, fmt.Sprintf("Subscribe %s while subscribed (%d)", ch, b.subs[ch]))
	}
	hold, err := b.hold, b.subErr
	if hold {
		b.pending[ch] = append(b.pending[ch], done)
	}
	b.mu.Unlock()
	if !hold {
		done(err)
	}
}

func (b *fakeBroker) Unsubscribe(ch string) {
	b.mu.Lock()
	b.calls = append(b.calls, "unsub "+ch)
	if b.subs[ch]--; b.subs[ch] != 0 {
		b.bad = append(b.bad, fmt.Sprintf("Unsubscribe %s while not subscribed (%d)", ch, b.subs[ch]))
	}
	b.mu.Unlock()
}

func (b *fakeBroker) Ready() bool  { return true }
func (b *fakeBroker) Close() error { return nil }

// fire completes the oldest held Subscribe of ch.
func (b *fakeBroker) fire(t testing.TB, ch string, err error) {
	t.Helper()
	b.mu.Lock()
	q := b.pending[ch]
	if len(q) == 0 {
		b.mu.Unlock()
		t.Fatalf("no pending Subscribe for %q", ch)
	}
	done := q[0]
	b.pending[ch] = q[1:]
	b.mu.Unlock()
	done(err)
}

func (b *fakeBroker) takeCalls() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.calls
	b.calls = nil
	return c
}

func (b *fakeBroker) violations() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.bad...)
}

// testHub builds a hub with n queue loops over broker b.
func testHub(t testing.TB, b Broker, n int, cfg Config) (*Hub, []*queueLoop) {
	t.Helper()
	loops := make([]*queueLoop, n)
	posters := make([]Poster, n)
	for i := range loops {
		loops[i] = &queueLoop{}
		posters[i] = loops[i]
	}
	h := New(cfg, b, posters)
	if err := b.Start(h); err != nil {
		t.Fatal(err)
	}
	return h, loops
}

// apiClient returns a function that sends one request to the admin API
// served by srv and answers its status and body (trimmed).
func apiClient(t *testing.T, srv *httptest.Server) func(method, path, body string) (int, string) {
	return func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(out))
	}
}
