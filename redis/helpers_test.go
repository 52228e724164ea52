package redis

import (
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wshub/wshub/redis/redistest"
)

// recSink records deliveries per channel.
type recSink struct {
	mu   sync.Mutex
	msgs map[string][]string
}

func newRecSink() *recSink { return &recSink{msgs: make(map[string][]string)} }

func (s *recSink) Deliver(channel string, data []byte) {
	s.mu.Lock()
	s.msgs[channel] = append(s.msgs[channel], string(data))
	s.mu.Unlock()
}

func (s *recSink) get(channel string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs[channel]...)
}

func (s *recSink) has(channel, msg string) bool {
	for _, m := range s.get(channel) {
		if m == msg {
			return true
		}
	}
	return false
}

// fastConfig has timings short enough for failure tests.
func fastConfig(cfg Config) Config {
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = 100 * time.Millisecond
	}
	if cfg.ProbeTimeout == 0 {
		cfg.ProbeTimeout = 400 * time.Millisecond
	}
	cfg.MinBackoff = 20 * time.Millisecond
	cfg.MaxBackoff = 200 * time.Millisecond
	cfg.CommandTimeout = time.Second
	cfg.DialTimeout = 500 * time.Millisecond
	cfg.ClusterRefresh = time.Second
	return cfg
}

// testLogger sends the broker's log to t.Log: shown for failed tests and -v.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startBroker creates, starts and waits for a ready broker; closed at cleanup.
func startBroker(t testing.TB, cfg Config) (*Broker, *recSink) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	b, err := New(fastConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	sink := newRecSink()
	if err := b.Start(sink); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, b.Ready, "broker ready")
	return b, sink
}

// eventually is redistest.Eventually.
var eventually = redistest.Eventually

// await calls fn with a done callback and waits for its first call. A second
// call fails the test whenever it comes before the broker is closed (every
// test closes its brokers before it ends, and Close waits for the goroutines
// that call back), not only within some grace period after the first.
func await(t testing.TB, fn func(done func(error))) error {
	t.Helper()
	ch := make(chan error, 1)
	var calls atomic.Int32
	fn(func(err error) {
		if n := calls.Add(1); n > 1 {
			t.Errorf("done called %d times (now with %v)", n, err)
			return
		}
		ch <- err
	})
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("done not called within 5s")
		return nil
	}
}

func subscribe(t testing.TB, b *Broker, ch string) error {
	t.Helper()
	return await(t, func(done func(error)) { b.Subscribe(ch, done) })
}

func publish(t testing.TB, b *Broker, ch, msg string) error {
	t.Helper()
	return await(t, func(done func(error)) { b.Publish(ch, []byte(msg), done) })
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// checkGoroutines fails when goroutines started after base are still alive
// shortly after the test's work was closed: it polls (every 20 ms) until they
// are gone, the condition it waits for.
func checkGoroutines(t testing.TB, base int) {
	t.Helper()
	deadline := time.Now().Add(4 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutine leak: %d running, %d before\n%s", n, base, trimStacks(string(buf)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// goroutineID is the calling goroutine's id, from its stack header
// ("goroutine 123 [running]:").
func goroutineID() uint64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := strings.Fields(string(buf))
	if len(f) < 2 {
		return 0
	}
	id, _ := strconv.ParseUint(f[1], 10, 64)
	return id
}

// goroutineAlive reports whether the goroutine id still exists (ids are
// never reused).
func goroutineAlive(id uint64) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	return strings.Contains("\n"+string(buf), "\ngoroutine "+strconv.FormatUint(id, 10)+" [")
}

func trimStacks(s string) string {
	if len(s) > 8000 {
		return s[:8000] + "\n..."
	}
	return strings.TrimSpace(s)
}
