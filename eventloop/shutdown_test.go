package eventloop

import (
	"context"
	"errors"
	"github.com/wshub/wshub/wsproto/wstest"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wshub/wshub/wsproto"
)

// Every client gets what was queued before the shutdown, then 1001.
func TestShutdownDeliversQueuedThenGoingAway(t *testing.T) {
	h := newTestHandler()
	s, runErr := runServer(t, Config{Loops: 2}, h)
	var cls []*client
	for range 10 {
		cls = append(cls, dialWS(t, s, "/ws"))
	}
	eventually(t, 2*time.Second, "all open", func() bool { return h.opened.Load() == 10 })
	for _, l := range s.Loops() {
		l.Post(func() {
			f := wsproto.NewFrame(ws.OpText, []byte("last words"))
			for _, c := range h.conns(l.idx) {
				c.Send(f)
			}
			f.Release()
		})
	}
	shutdownErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdownErr <- s.Shutdown(ctx)
	}()
	for i, c := range cls {
		if f := c.NextFrame(); string(f.Payload) != "last words" {
			t.Fatalf("client %d got %q before the close", i, f.Payload)
		}
		c.ExpectClose(wsproto.CloseGoingAway, true)
		c.ExpectEOF(2 * time.Second)
	}
	if err := <-shutdownErr; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return after Shutdown")
	}
	if n := h.closed.Load(); n != 10 {
		t.Fatalf("OnClose called %d times, want 10", n)
	}
	if c, err := net.DialTimeout("tcp", s.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("still accepting after Shutdown")
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// A client that never answers the 1001 holds the drain for CloseTimeout
// only; new connections are refused meanwhile.
func TestShutdownBoundedByCloseTimeout(t *testing.T) {
	s, runErr := runServer(t, Config{CloseTimeout: 300 * time.Millisecond}, newTestHandler())
	deaf := dialWS(t, s, "/ws")
	start := time.Now()
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- s.Shutdown(context.Background()) }()
	deaf.ExpectClose(wsproto.CloseGoingAway, false)

	late := dialRaw(t, s.Addr().String())
	late.Conn.Write([]byte(wstest.UpgradeRequest("test", "/ws")))
	late.Conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := late.Conn.Read(make([]byte, 16)); err == nil {
		t.Fatalf("a connection made while draining was served (%d bytes)", n)
	}

	if err := <-shutdownErr; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if el := time.Since(start); el < 250*time.Millisecond || el > 3*time.Second {
		t.Fatalf("Shutdown took %v, want about the 300ms close timeout", el)
	}
	if err := <-runErr; err != nil {
		t.Fatalf("Run returned %v", err)
	}
}

// When ctx ends first, Shutdown says so and still stops the engine.
func TestShutdownContextExpires(t *testing.T) {
	s, runErr := runServer(t, Config{CloseTimeout: time.Minute}, newTestHandler())
	dialWS(t, s, "/ws")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown returned %v, want the deadline", err)
	}
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return")
	}
}

// The engine stopping by itself is reported, not taken for a shutdown.
func TestRunReportsUnexpectedStop(t *testing.T) {
	s, runErr := runServer(t, Config{}, newTestHandler())
	s.mu.Lock()
	eng := s.engine
	s.mu.Unlock()
	if err := eng.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-runErr; !errors.Is(err, ErrUnexpectedStop) {
		t.Fatalf("Run returned %v, want ErrUnexpectedStop", err)
	}
}

func TestShutdownBeforeRun(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Logger: quietLogger()}, newTestHandler())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown before Run: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after Shutdown returned %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run after Shutdown did not return")
	}
}
