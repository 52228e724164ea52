package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wshub/wshub/redis/redistest"
)

// Two gateways on a 3-master Redis Cluster: sharded pub/sub across every
// shard, and delivery that keeps going when a subscribed channel's slot moves.
func TestRedisClusterShardsAndSlotMove(t *testing.T) {
	cl := redistest.StartCluster(t, 0)
	seeds := strings.Join(cl.Addrs(), ",")
	a := startRedisGateway(t, seeds, "cl-a")
	b := startRedisGateway(t, seeds, "cl-b")

	// One channel per master.
	owner := map[string]int{}
	taken := map[int]bool{}
	var chans []string
	for i := 0; len(chans) < 3; i++ {
		ch := "shard:" + strconv.Itoa(i)
		if o, _ := cl.Owner(t, cl.KeySlot(t, ch)); !taken[o] {
			taken[o], owner[ch] = true, o
			chans = append(chans, ch)
		}
	}
	sa, sb := dial(t, a.addr), dial(t, b.addr)
	sa.subscribe(chans...)
	sb.subscribe(chans...)
	for _, ch := range chans {
		if n := redistest.NumSub(t, cl.Nodes[owner[ch]].Client(), ch, true); n != 2 {
			t.Fatalf("SHARDNUMSUB %s on its master: %d, want 2", ch, n)
		}
	}
	pub := dial(t, a.addr)
	for _, ch := range chans {
		pub.mustOK(map[string]any{"op": "publish", "channel": ch, "data": "ws:" + ch})
		if code, body := b.post("/api/publish", fmt.Sprintf(`{"channel":%q,"data":"api:%s"}`, ch, ch)); code != 200 {
			t.Fatalf("API publish on %s: %d %s", ch, code, body)
		}
	}
	// Order holds per channel; channels on different shards arrive over
	// different connections and may interleave in any way.
	for k, s := range []*client{sa, sb} {
		got := map[string][]any{}
		for range 2 * len(chans) {
			m := s.msg()
			ch, _ := m["channel"].(string)
			got[ch] = append(got[ch], m["data"])
		}
		for _, ch := range chans {
			if want := []any{"ws:" + ch, "api:" + ch}; fmt.Sprint(got[ch]) != fmt.Sprint(want) {
				t.Fatalf("subscriber %d on %s: %v, want %v (all: %v)", k, ch, got[ch], want, got)
			}
		}
	}

	// Move a subscribed channel's (key-less) slot to another master.
	var ch string
	var slot uint16
	for i := 0; ; i++ {
		ch = "move:" + strconv.Itoa(i)
		slot = cl.KeySlot(t, ch)
		o, _ := cl.Owner(t, slot)
		if n, _ := cl.Nodes[o].Do("CLUSTER", "COUNTKEYSINSLOT", strconv.Itoa(int(slot))).AsInt64(); n == 0 {
			break
		}
	}
	sa.subscribe(ch)
	sb.subscribe(ch)
	from, ids := cl.Owner(t, slot)
	to := (from + 1) % len(cl.Nodes)
	cl.MoveSlot(t, slot, from, to, ids)
	moved := time.Now()
	toC, fromC := cl.Nodes[to].Client(), cl.Nodes[from].Client()
	eventually(t, 5*time.Second, func() bool {
		return redistest.NumSub(t, toC, ch, true) == 2 && redistest.NumSub(t, fromC, ch, true) == 0
	}, "both gateways resubscribed on the slot's new master")
	t.Logf("slot %d moved %s -> %s: resubscribed after %v", slot, cl.Nodes[from].Addr(), cl.Nodes[to].Addr(), time.Since(moved).Round(time.Millisecond))
	// Publishing may briefly fail while the publishers' slot maps catch up.
	eventually(t, 5*time.Second, func() bool {
		code, _ := b.post("/api/publish", fmt.Sprintf(`{"channel":%q,"data":"after move"}`, ch))
		return code == 200
	}, "publish after the move")
	for k, s := range []*client{sa, sb} {
		if m := s.msg(); m["channel"] != ch || m["data"] != "after move" {
			t.Fatalf("subscriber %d after the move: %v", k, m)
		}
	}
	pub.mustOK(map[string]any{"op": "publish", "channel": ch, "data": "and again"})
	for k, s := range []*client{sa, sb} {
		if m := s.msg(); m["channel"] != ch || m["data"] != "and again" {
			t.Fatalf("subscriber %d after the move: %v", k, m)
		}
		s.expectQuiet()
	}
}
