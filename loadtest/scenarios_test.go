package loadtest

import (
	"context"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wshub/wshub/bench/refhub"
)

func TestIdleHoldsEveryConnection(t *testing.T) {
	ws, _ := startRefHub(t)
	var phases []string
	var ready int64
	coord := &Local{OnBarrier: func(p string) { phases = append(phases, p) }}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw, err := Run(ctx, Config{Scenario: ScenarioIdle, Targets: []string{ws}, Pollers: 2, Conns: 300, Channels: 7, Duration: 300 * time.Millisecond}, coord)
	if err != nil {
		t.Fatal(err)
	}
	res := Finalize(raw)
	ready = res.Connected
	if ready != 300 || res.Failed != 0 || raw.OpenDone != 300 || res.Errors != 0 {
		t.Fatalf("connected %d failed %d open at end %d errors %v", ready, res.Failed, raw.OpenDone, res.ErrorsByKind)
	}
	if res.Handshake.Count != 300 || res.Subscribe.Count != 300 {
		t.Fatalf("handshake %d subscribe %d samples", res.Handshake.Count, res.Subscribe.Count)
	}
	if len(phases) != 2 || phases[0] != PhaseReady || phases[1] != PhaseDone {
		t.Fatalf("barriers %v", phases)
	}
}

func TestIdleAgainstWrongPathCountsRefusals(t *testing.T) {
	ws, _ := startRefHub(t)
	res := runLocal(t, Config{Scenario: ScenarioIdle, Targets: []string{ws}, Path: "/nope", Conns: 20, Duration: time.Millisecond})
	if res.Connected != 0 || res.Failed != 20 || res.ErrorsByKind["refused"] != 20 || res.Errors != 20 || res.Refused["404"] != 20 {
		t.Fatalf("connected %d failed %d errors %v refused %v", res.Connected, res.Failed, res.ErrorsByKind, res.Refused)
	}
}

// TestRefusedUpgradesCountedByStatus: a gateway that answers upgrades with
// 401 and 429 (a token refused, a limit reached) has them counted by
// status, as refusals and not as broken handshakes, while a response that
// is not HTTP at all stays a handshake error.
func TestRefusedUpgradesCountedByStatus(t *testing.T) {
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 3 {
		case 0:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		case 1:
			w.WriteHeader(http.StatusUnauthorized)
		default:
			conn, buf, _ := w.(http.Hijacker).Hijack()
			buf.WriteString("SSH-2.0-OpenSSH_9.6\r\n\r\n")
			buf.Flush()
			conn.Close()
		}
	}))
	defer s.Close()
	res := runLocal(t, Config{Scenario: ScenarioIdle, Targets: []string{strings.TrimPrefix(s.URL, "http://")}, Conns: 30, Duration: time.Millisecond})
	want := map[string]int64{"401": 10, "429": 10}
	if res.Failed != 30 || !maps.Equal(res.Refused, want) || res.ErrorsByKind["refused"] != 20 || res.ErrorsByKind["handshake"] != 10 || res.Errors != 30 {
		t.Fatalf("failed %d, refused %v (want %v), errors %v", res.Failed, res.Refused, want, res.ErrorsByKind)
	}
}

func TestChurnCompletesCycles(t *testing.T) {
	ws, _ := startRefHub(t)
	res := runLocal(t, Config{Scenario: ScenarioChurn, Targets: []string{ws}, Conns: 20, Channels: 3, Rate: 200, Duration: 500 * time.Millisecond})
	c := res.Churn
	// 200/s for 0.5 s is about 100 cycles; each must finish cleanly.
	if c == nil || c.Completed < 50 || c.Completed != res.Conns || res.Errors != 0 {
		t.Fatalf("churn %+v, dialed %d, errors %v", c, res.Conns, res.ErrorsByKind)
	}
	if res.Handshake.Count != c.Completed || c.HandshakesPerS < 80 || c.HandshakesPerS > 260 {
		t.Fatalf("handshakes %d, %.0f/s for a 200/s target", res.Handshake.Count, c.HandshakesPerS)
	}
}

func TestStormReconnectsEveryone(t *testing.T) {
	ws, _ := startRefHub(t)
	res := runLocal(t, Config{Scenario: ScenarioStorm, Targets: []string{ws}, Pollers: 2, Conns: 200, Channels: 5, Duration: 10 * time.Second})
	s := res.Storm
	if s == nil || s.Dropped != 200 || s.Missing != 0 || s.RecoveredMs <= 0 || s.Reconnect.Count != 200 {
		t.Fatalf("storm %+v", s)
	}
	if res.Errors != 0 {
		t.Fatalf("errors %v", res.ErrorsByKind)
	}
}

// TestStormServerTrigger: the gateway goes away (here: every connection
// is cut by the server) and the clients come back to the second target.
func TestStormServerTrigger(t *testing.T) {
	dead := newKillableServer(t)
	ws, _ := startRefHub(t)
	// The storm phase starts at the ready barrier, once every subscriber is
	// connected and subscribed (planned as ready): kill the server then.
	ready := make(chan struct{})
	coord := &Local{OnBarrier: func(p string) {
		if p == PhaseReady {
			close(ready)
		}
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan *Result, 1)
	go func() {
		raw, err := Run(ctx, Config{Scenario: ScenarioStorm, StormTrigger: "server", Targets: []string{dead.addr, ws}, Conns: 40, Duration: 10 * time.Second}, coord)
		if err != nil {
			t.Errorf("Run: %v", err)
			close(done)
			return
		}
		done <- Finalize(raw)
	}()
	select {
	case <-ready:
	case res := <-done:
		t.Fatalf("the run ended before its ready barrier: %+v", res)
	}
	if n := dead.count(); n < 20 {
		t.Fatalf("%d subscriptions on the server to kill at the ready barrier, want its 20 subscribers'", n)
	}
	dead.kill()
	res := <-done
	if res == nil {
		t.FailNow()
	}
	if s := res.Storm; s == nil || s.Dropped != 20 || s.Missing != 0 || s.Reconnect.Count != 20 {
		t.Fatalf("storm %+v errors %v", res.Storm, res.ErrorsByKind)
	}
}

// smallSendBuffers makes every accepted connection's kernel send buffer
// small, so a reader that stops fills it (and the hub's queue behind it)
// after a predictable amount of data rather than after megabytes.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(8192)
	}
	return c, err
}

func TestSlowSubscribersAreReportedApart(t *testing.T) {
	h := refhub.New()
	go h.Run()
	srv := httptest.NewUnstartedServer(h.Handler())
	srv.Listener = smallSendBuffers{srv.Listener}
	srv.Start()
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close(); h.Stop() })
	ws := strings.TrimPrefix(srv.URL, "http://")
	res := runLocal(t, Config{
		Scenario: ScenarioSlow, Targets: []string{ws}, Subs: 20, Channels: 2, Publishers: 2,
		SlowFraction: 0.25, Rate: 500, Size: 2000, Duration: 1500 * time.Millisecond, Drain: 3 * time.Second,
	})
	s := res.Slow
	if s == nil || s.Subs != 5 {
		t.Fatalf("slow %+v", s)
	}
	// The reference hub drops a subscriber whose 256-slot queue overflows:
	// every slow one, and none of the others.
	if s.Dropped != s.Subs || len(s.Codes) == 0 || s.Delivered >= s.Expected {
		t.Fatalf("slow %+v", s)
	}
	if res.Latency.Count != res.Delivered {
		t.Errorf("latency has %d samples for %d normal deliveries: slow readers leak in", res.Latency.Count, res.Delivered)
	}
	if res.Lost != 0 || res.Expected == 0 || res.Delivered != res.Expected || res.ErrorsByKind["closed"] != 0 {
		t.Fatalf("normal subscribers: expected %d delivered %d lost %d errors %v", res.Expected, res.Delivered, res.Lost, res.ErrorsByKind)
	}
}

// killableServer is a PROTOCOL.md subscribe-only server whose connections
// can all be cut at once.
type killableServer struct {
	addr  string
	mu    sync.Mutex
	conns []*websocket.Conn
	srv   *httptest.Server
}

func newKillableServer(t *testing.T) *killableServer {
	k := &killableServer{}
	up := websocket.Upgrader{}
	k.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
				k.mu.Lock()
				_ = c.WriteMessage(websocket.TextMessage, []byte(`{"op":"ok","id":1}`))
				k.conns = append(k.conns, c)
				k.mu.Unlock()
			}
		}()
	}))
	k.addr = strings.TrimPrefix(k.srv.URL, "http://")
	t.Cleanup(k.srv.Close)
	return k
}

func (k *killableServer) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.conns)
}

// kill stops accepting and closes every connection with 1001.
func (k *killableServer) kill() {
	k.srv.Listener.Close()
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.conns {
		_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1001, "going away"))
		c.Close()
	}
}

func TestReadProcSelf(t *testing.T) {
	s, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSS <= 0 || s.HWM < s.RSS || s.CPUSec < 0 {
		t.Fatalf("sample %+v", s)
	}
}
