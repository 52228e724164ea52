package main

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/wshub/wshub/redis/redistest"
)

// Three gateways on one Redis: subscribers on A and B, publishers on B and C
// (and the HTTP API on A). Every subscriber gets every message, in one order
// everywhere, each publisher's messages in the order it sent them.
func TestRedisThreeInstancesOneOrder(t *testing.T) {
	srv := redistest.Start(t)
	a := startRedisGateway(t, srv.URL(), "gw-a")
	b := startRedisGateway(t, srv.URL(), "gw-b")
	c := startRedisGateway(t, srv.URL(), "gw-c")

	var subs []*client
	for _, g := range []*gateway{a, a, b, b} {
		s := dial(t, g.addr)
		s.subscribe("room:3")
		subs = append(subs, s)
	}
	const perPub = 150
	pubs := map[string]*client{"b": dial(t, b.addr), "c": dial(t, c.addr)}
	for i := 1; i <= perPub; i++ {
		for name, p := range pubs {
			p.sendText(fmt.Sprintf(`{"op":"publish","channel":"room:3","data":{"from":%q,"n":%d}}`, name, i))
		}
		if i%50 == 0 {
			if code, body := a.post("/api/publish", fmt.Sprintf(`{"channel":"room:3","data":{"from":"api","n":%d}}`, i/50)); code != 200 {
				t.Fatalf("API publish: %d %s", code, body)
			}
		}
	}
	total := 2*perPub + perPub/50
	var first []string
	for i, s := range subs {
		last := map[string]float64{}
		var got []string
		for len(got) < total {
			m := s.msg()
			d, _ := m["data"].(map[string]any)
			if m["op"] != "message" || m["channel"] != "room:3" || d == nil {
				t.Fatalf("subscriber %d: unexpected %v", i, m)
			}
			from, n := d["from"].(string), d["n"].(float64)
			if n != last[from]+1 {
				t.Fatalf("subscriber %d: %s's message %v after %v (lost or reordered)", i, from, n, last[from])
			}
			last[from] = n
			got = append(got, from+strconv.Itoa(int(n)))
		}
		if i == 0 {
			first = got
			continue
		}
		for j := range got {
			if got[j] != first[j] {
				t.Fatalf("subscriber %d saw message %d as %s, subscriber 0 as %s", i, j, got[j], first[j])
			}
		}
		s.expectQuiet()
	}
}

// Redis sees one subscription per instance per channel, whatever the number
// of loops and local subscribers, and none once the last one leaves.
func TestRedisLazySubscriptions(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client()
	a := startRedisGateway(t, srv.URL(), "lazy-a", "--loops", "4")
	b := startRedisGateway(t, srv.URL(), "lazy-b", "--loops", "4")
	numsub := func(ch string) int64 { return redistest.NumSub(t, admin, ch, false) }
	waitNumsub := func(ch string, want int64) {
		t.Helper()
		eventually(t, 3*time.Second, func() bool { return numsub(ch) == want }, fmt.Sprintf("NUMSUB %s = %d", ch, want))
	}
	// What must not happen is an UNSUBSCRIBE too early, sent by a gateway's
	// broker after the hub asked for it. settled returns once via's gateway
	// has sent everything its hub asked of its broker so far: the subscribe
	// of a fresh channel is confirmed after a round of the subscription
	// connection that carries every (UN)SUBSCRIBE queued before it.
	flushes := 0
	settled := func(via *client) {
		t.Helper()
		flushes++
		via.subscribe(fmt.Sprintf("lazy:flush:%d", flushes))
	}
	// disconnect closes cl and waits until g's hub has handled it: the hub
	// drops a closing connection's subscriptions before its registry entry
	// (hub.OnClose), whose lookup says 404 once that is written.
	disconnect := func(g *gateway, cl *client) {
		t.Helper()
		id, _ := cl.info()
		eventually(t, 3*time.Second, func() bool { code, _ := g.lookup(id); return code == 200 }, id+" registered")
		cl.Conn.Close()
		eventually(t, 3*time.Second, func() bool { code, _ := g.lookup(id); return code == 404 }, id+" gone from the registry")
	}

	// Eight subscribers on A's four loops, both channels each.
	var onA []*client
	for range 8 {
		s := dial(t, a.addr)
		s.subscribe("lazy:1", "lazy:2")
		onA = append(onA, s)
	}
	flushA := dial(t, a.addr)
	if n := numsub("lazy:1"); n != 1 {
		t.Fatalf("NUMSUB lazy:1 with 8 subscribers on one instance: %d", n)
	}
	onB := []*client{dial(t, b.addr), dial(t, b.addr)}
	for _, s := range onB {
		s.subscribe("lazy:1")
	}
	if n, n2 := numsub("lazy:1"), numsub("lazy:2"); n != 2 || n2 != 1 {
		t.Fatalf("NUMSUB after B joined: lazy:1=%d (want 2) lazy:2=%d (want 1)", n, n2)
	}

	// A's subscribers leave: half unsubscribe, half disconnect.
	for i, s := range onA {
		if i%2 == 0 {
			s.mustOK(map[string]any{"op": "unsubscribe", "channel": "lazy:1"})
			s.mustOK(map[string]any{"op": "unsubscribe", "channel": "lazy:2"})
		} else {
			disconnect(a, s)
		}
		if i == len(onA)-1 {
			break
		}
		settled(flushA)
		if numsub("lazy:1") != 2 || numsub("lazy:2") != 1 {
			t.Fatalf("subscription dropped while %d local subscribers remain", len(onA)-1-i)
		}
	}
	waitNumsub("lazy:1", 1)
	waitNumsub("lazy:2", 0)
	disconnect(b, onB[0])
	settled(onB[1]) // one subscriber left on B: must stay
	if n := numsub("lazy:1"); n != 1 {
		t.Fatalf("NUMSUB lazy:1 with one subscriber left on B: %d", n)
	}
	onB[1].mustOK(map[string]any{"op": "unsubscribe", "channel": "lazy:1"})
	waitNumsub("lazy:1", 0)

	// Still works after all that churn.
	s := dial(t, b.addr)
	s.subscribe("lazy:1")
	a.post("/api/publish", `{"channel":"lazy:1","data":"again"}`)
	if m := s.msg(); m["data"] != "again" {
		t.Fatalf("after churn: %v", m)
	}
}
