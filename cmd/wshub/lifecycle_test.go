package main

import (
	"fmt"
	"github.com/wshub/wshub/wsproto/wstest"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

func TestPongTimeoutClosesSilentClient(t *testing.T) {
	g := startGateway(t, "--ping-interval", "300ms", "--pong-timeout", "300ms")
	silent := dial(t, g.addr)
	polite := dial(t, g.addr)

	// The polite client answers every ping; the silent one never does.
	start := time.Now()
	pings := 0
	for time.Since(start) < 2*time.Second {
		f, err := polite.ReadFrame(2 * time.Second)
		if err != nil {
			t.Fatalf("polite client lost its connection: %v", err)
		}
		if f.Header.OpCode == ws.OpPing {
			pings++
			polite.Write(wstest.Frame(ws.OpPong, true, true, f.Payload))
		}
	}
	if pings < 2 {
		t.Fatalf("polite client saw %d pings in 2s with a 300ms interval", pings)
	}
	// The silent client got a ping and then the connection went away.
	silent.Conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	sawPing := false
	for {
		f, err := wstest.ReadFrame(silent.Reader)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("silent client was not closed after the pong timeout")
			}
			break
		}
		sawPing = sawPing || f.Header.OpCode == ws.OpPing
	}
	if !sawPing {
		t.Fatal("silent client was closed without being pinged")
	}
	polite.sendText(`{"op":"ping","id":1}`)
	if m := polite.next(); m["op"] != "pong" {
		t.Fatalf("polite client after the silent one was closed: %v", m)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	g := startGateway(t, "--handshake-timeout", "400ms")
	c := dialRaw(t, g.addr)
	c.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n")) // never finished
	start := time.Now()
	buf := make([]byte, 64)
	c.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Conn.Read(buf)
	if err == nil || n > 0 {
		t.Fatalf("expected the connection closed without a reply, got %q %v", buf[:n], err)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("an unfinished upgrade was not closed")
	}
	if el := time.Since(start); el < 200*time.Millisecond || el > 3*time.Second {
		t.Fatalf("closed after %v, want about 400ms", el)
	}
}

func TestMaxConnsRefusesExtraConnections(t *testing.T) {
	g := startGateway(t, "--max-conns", "5")
	var held []*client
	for i := 0; i < 5; i++ {
		held = append(held, dial(t, g.addr))
	}
	for i := 0; i < 3; i++ {
		extra := dialRaw(t, g.addr)
		extra.Conn.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprint(extra.Conn, wstest.UpgradeRequest(g.addr, "/ws"))
		buf := make([]byte, 16)
		n, err := extra.Conn.Read(buf)
		if err == nil {
			t.Fatalf("connection over --max-conns was served: %q", buf[:n])
		}
		// Refused means closed at once, not left unanswered.
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("connection over --max-conns was neither served nor closed within 3s")
		}
	}
	for i, c := range held {
		c.sendText(fmt.Sprintf(`{"op":"ping","id":%d}`, i))
		if m := c.next(); m["op"] != "pong" || m["id"] != float64(i) {
			t.Fatalf("held connection %d: %v", i, m)
		}
	}
	// A freed slot can be used again.
	held[0].Conn.Close()
	deadline := time.Now().Add(3 * time.Second)
	for {
		c := dialRaw(t, g.addr)
		c.Write([]byte(wstest.UpgradeRequest(g.addr, "/ws")))
		c.Conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 12)
		if n, _ := c.Conn.Read(buf); n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a slot freed by a closed connection was never reused")
		}
		time.Sleep(50 * time.Millisecond) // paces the retries until the slot is free
	}
}

func TestGracefulShutdown(t *testing.T) {
	g := startGateway(t, "--shutdown-timeout", "5s")
	var cls []*client
	for i := 0; i < 20; i++ {
		c := dial(t, g.addr)
		c.sendText(`{"op":"subscribe","channel":"news","id":1}`)
		if m := c.next(); m["op"] != "ok" {
			t.Fatalf("subscribe: %v", m)
		}
		cls = append(cls, c)
	}
	// A publication queued just before the signal still arrives before 1001.
	if code, _ := g.post("/api/publish", `{"channel":"news","data":"last words"}`); code != 200 {
		t.Fatalf("publish %d", code)
	}
	g.signal(syscall.SIGTERM)
	for i, c := range cls {
		if m := c.next(); m["data"] != "last words" {
			t.Fatalf("client %d: %v before close", i, m)
		}
		c.expectClose(1001)
	}
	if code := g.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}
