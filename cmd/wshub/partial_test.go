package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wshub/wshub/redis/redistest"
	"github.com/wshub/wshub/wsproto/wstest"
)

// Many connections each park a large unfinished message: they are closed
// with 1008 once the gateway-wide budget is reached, a canary is unaffected,
// and RSS grows by no more than the budget.
func TestPartialBudgetBoundsMemory(t *testing.T) {
	const (
		budget  = 8 << 20
		parked  = 60000 // bytes each connection leaves unfinished
		clients = 300   // 18 MB asked for: more than twice the budget
	)
	g := startGateway(t, "--max-partial-bytes", fmt.Sprint(budget), "--message-timeout", "60s")
	canary := dial(t, g.addr)
	canary.sendText(`{"op":"subscribe","channel":"canary","id":1}`)
	if m := canary.next(); m["op"] != "ok" {
		t.Fatalf("canary subscribe: %v", m)
	}
	conns := make([]*client, clients)
	for i := range conns {
		conns[i] = dial(t, g.addr)
	}
	rssIdle := g.rssKiB()

	// Half park fragments (the decoder's buffer), half an incomplete frame
	// (gnet's inbound buffer).
	payload := bytes.Repeat([]byte("x"), parked)
	fragment := wstest.Frame(ws.OpText, false, true, payload)
	incomplete := wstest.Frame(ws.OpText, true, true, bytes.Repeat([]byte("y"), parked+5000))[:parked+8]
	for i, c := range conns {
		if i%2 == 0 {
			c.Write(fragment)
		} else {
			c.Write(incomplete)
		}
	}
	// Each connection is either closed with 1008 or still parking.
	var closed, open int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := c.ReadFrame(3 * time.Second)
			mu.Lock()
			defer mu.Unlock()
			var ne net.Error
			switch {
			case err == nil && f.Header.OpCode == ws.OpClose && len(f.Payload) >= 2 && binary.BigEndian.Uint16(f.Payload) == 1008:
				closed++
			case err != nil && errors.As(err, &ne) && ne.Timeout():
				open++ // nothing came: still parking
			default:
				t.Errorf("parking connection got %v %v %q", f.Header.OpCode, err, f.Payload)
			}
		}()
	}
	wg.Wait()
	held, _ := g.metricSum("wshub_eventloop_partial_bytes")
	closes, _ := g.metricSum(`wshub_eventloop_partial_limit_closes_total{reason="partial_budget"}`)
	rssParked := g.rssKiB()
	t.Logf("%d parking, %d closed with 1008 (%v counted); %v bytes parked of %d; RSS %d KiB idle, %d KiB parked (+%d KiB, budget %d KiB)",
		open, closed, closes, held, budget, rssIdle, rssParked, rssParked-rssIdle, budget>>10)
	// Each parker is charged what its buffer costs, at least what it sent.
	if held > budget || float64(open*parked) > held {
		t.Fatalf("%v bytes counted for %d parking connections, budget %d", held, open, budget)
	}
	if open+closed != clients || int(closes) != closed || open < budget/(2*parked) {
		t.Fatalf("%d parking and %d closed (%v counted) of %d", open, closed, closes, clients)
	}
	// The budget counts buffers, not their allocator's and the runtime's
	// overhead: RSS grows by the budget and a little more, never with the
	// number of clients (the refused ones were refused before their
	// messages were copied).
	if grown := (rssParked - rssIdle) << 10; grown > budget+budget/2 {
		t.Fatalf("RSS grew by %d bytes with %v parked, over the %d budget + 50%%", grown, held, budget)
	}
	// The canary still gets what is published, and a parker that finishes
	// its message is served.
	if code, body := g.post("/api/publish", `{"channel":"canary","data":"still here"}`); code != 200 {
		t.Fatalf("publish: %d %s", code, body)
	}
	if m := canary.next(); m["data"] != "still here" {
		t.Fatalf("canary got %v", m)
	}
	// Connections that go give their share back.
	for _, c := range conns {
		c.Conn.Close()
	}
	redistest.Eventually(t, 5*time.Second, func() bool {
		v, _ := g.metricSum("wshub_eventloop_partial_bytes")
		return v == 0
	}, "partial bytes back to 0")
}
