package redis

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/wshub/wshub/redis/redistest"
)

func TestSlotOf(t *testing.T) {
	// Reference values from the cluster spec and redis-cli CLUSTER KEYSLOT.
	for key, want := range map[string]uint16{"123456789": 12739, "foo": 12182, "{user1000}.following": 3443, "{user1000}.followers": 3443, "foo{}{bar}": 8363, "{}": 15257} {
		if got := slotOf(key); got != want {
			t.Errorf("slotOf(%q) = %d, want %d", key, got, want)
		}
	}
	for _, s := range []uint16{0, 1, 8000, 16383} {
		if got := slotOf("x{" + tagForSlot(s) + "}"); got != s {
			t.Errorf("tagForSlot(%d) lands in %d", s, got)
		}
	}
}

func TestCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 0)
	a, sa := startBroker(t, Config{ClusterAddrs: cl.Addrs(), InstanceID: "ka"})
	b, sb := startBroker(t, Config{ClusterAddrs: cl.Addrs(), InstanceID: "kb"})
	a.mu.Lock()
	shards := len(a.shards)
	a.mu.Unlock()
	if shards != 3 {
		t.Fatalf("%d subscription connections, want one per master (3)", shards)
	}

	// Channels on every shard, subscribed on both instances.
	var chans []string
	owners := map[int]int{}
	for i := 0; len(chans) < 30; i++ {
		ch := "k:" + strconv.Itoa(i)
		o, _ := cl.Owner(t, slotOf(ch))
		owners[o]++
		chans = append(chans, ch)
	}
	if len(owners) != 3 {
		t.Fatalf("test channels cover %d shards, want 3", len(owners))
	}
	for _, ch := range chans {
		must(t, subscribe(t, a, ch))
		must(t, subscribe(t, b, ch))
	}
	for _, ch := range chans[:6] {
		o, _ := cl.Owner(t, slotOf(ch))
		if n := redistest.NumSub(t, cl.Nodes[o].Client(), ch, true); n != 2 {
			t.Fatalf("SHARDNUMSUB %s on its master = %d, want 2", ch, n)
		}
	}

	// Publications from both instances: every subscriber, one order per channel.
	const per = 20
	for i := range per {
		for _, ch := range chans {
			p := a
			if i%2 == 1 {
				p = b
			}
			p.Publish(ch, []byte(fmt.Sprintf("%d", i)), func(err error) {
				if err != nil {
					t.Errorf("publish: %v", err)
				}
			})
		}
	}
	for _, ch := range chans {
		eventually(t, 5*time.Second, func() bool { return len(sa.get(ch)) == per && len(sb.get(ch)) == per }, "all messages on "+ch)
		ga, gb := sa.get(ch), sb.get(ch)
		for i := range ga {
			if ga[i] != gb[i] {
				t.Fatalf("%s: order differs at %d", ch, i)
			}
		}
	}

	// Registry and addressed sends on the cluster (keys in many slots).
	var da directRec
	a.SetDirectHandler(da.handle)
	// No TTL refresh within the test: only the rewrite after a reconnect can
	// restore entries lost with a restarted master.
	ra := startRegistry(t, a, RegistryConfig{HeartbeatInterval: 100 * time.Millisecond, HeartbeatTTL: 400 * time.Millisecond, TTL: 10 * time.Minute, RefreshTick: time.Minute})
	rb := startRegistry(t, b, fastRegistry)
	for i := range 10 {
		ra.Add("kc"+strconv.Itoa(i), "ku")
	}
	syncReg(t, ra)
	if info, err := lookup(rb, "kc7"); err != nil || info.Instance != "ka" {
		t.Fatalf("cluster lookup: %+v %v", info, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	must(t, rb.SendToConn(ctx, "kc3", []byte(`"direct"`)))
	if n, err := rb.SendToUser(ctx, "ku", []byte(`"all"`)); err != nil || n != 10 {
		t.Fatalf("cluster SendToUser: %d %v", n, err)
	}
	eventually(t, 2*time.Second, func() bool { return len(da.list()) == 11 }, "addressed sends on the cluster")

	// Move the slot of one channel to another master while subscribed.
	ch := chans[0]
	slot := slotOf(ch)
	from, ids := cl.Owner(t, slot)
	to := (from + 1) % 3
	before := a.Stats().ResubscribedChannels
	cl.MoveSlot(t, slot, from, to, ids)
	moved := time.Now()
	took := eventually(t, 5*time.Second, func() bool {
		return redistest.NumSub(t, cl.Nodes[to].Client(), ch, true) == 2 && redistest.NumSub(t, cl.Nodes[from].Client(), ch, true) == 0
	}, "both instances resubscribed on the new master")
	t.Logf("slot %d moved %s -> %s: resubscribed after %v", slot, cl.Nodes[from].Addr(), cl.Nodes[to].Addr(), took.Round(time.Millisecond))
	if a.Stats().ResubscribedChannels <= before {
		t.Fatal("slot move not counted as resubscription")
	}
	must(t, publish(t, b, ch, `"after move"`))
	eventually(t, 3*time.Second, func() bool { return sa.has(ch, `"after move"`) && sb.has(ch, `"after move"`) }, "delivery after the slot move")
	t.Logf("delivery resumed %v after the move", time.Since(moved).Round(time.Millisecond))
	if !a.Ready() || !b.Ready() {
		t.Fatal("unready after a slot move")
	}

	// A master restarting (kill -9, same port and node id): its shard
	// connection reconnects and resubscribes; the others never stopped.
	victim := 0 // holds registry entries but neither the heartbeat nor ws:instances
	var onVictim []string
	for _, c := range chans {
		if o, _ := cl.Owner(t, slotOf(c)); o == victim {
			onVictim = append(onVictim, c)
		}
	}
	cl.Nodes[victim].Kill()
	eventually(t, 3*time.Second, func() bool { return !a.Ready() }, "unready while a master is down")
	cl.Nodes[victim].Start()
	back := time.Now()
	eventually(t, 10*time.Second, func() bool { return a.Ready() && b.Ready() }, "ready after the master came back")
	vc := cl.Nodes[victim].Client()
	eventually(t, 5*time.Second, func() bool {
		for _, c := range onVictim {
			if redistest.NumSub(t, vc, c, true) != 2 {
				return false
			}
		}
		return true
	}, "channels of the restarted master resubscribed")
	t.Logf("%d channels of the restarted master resubscribed %v after it was back", len(onVictim), time.Since(back).Round(time.Millisecond))
	// Registry entries the restarted (empty) master held are written again.
	lost := 0
	for i := range 10 {
		if o, _ := cl.Owner(t, slotOf(connKey("kc"+strconv.Itoa(i)))); o == victim {
			lost++
		}
	}
	if lost == 0 {
		t.Fatal("no registry entry on the restarted master: the check below proves nothing")
	}
	eventually(t, 3*time.Second, func() bool {
		for i := range 10 {
			if _, err := lookup(rb, "kc"+strconv.Itoa(i)); err != nil {
				return false
			}
		}
		return true
	}, "registry entries back after the master restart")
	t.Logf("%d registry entries lived on the restarted master; all resolve again", lost)
	for _, c := range onVictim[:1] {
		must(t, publish(t, b, c, `"after restart"`))
		eventually(t, 3*time.Second, func() bool { return sa.has(c, `"after restart"`) }, "delivery after the master restart")
	}
}

// A master killed with a replica to take over: the replica is promoted and
// the channels it now serves are subscribed there.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("6-node cluster failover in -short mode")
	}
	cl := redistest.StartCluster(t, 1)
	a, sa := startBroker(t, Config{ClusterAddrs: cl.Addrs(), InstanceID: "fa"})
	ch := "fo:1"
	must(t, subscribe(t, a, ch))
	slot := slotOf(ch)
	victim, _ := cl.Owner(t, slot)
	if victim < 0 {
		t.Fatal("no owner")
	}
	witness := (victim + 1) % len(cl.Nodes)
	cl.Nodes[victim].Kill()
	killed := time.Now()
	var owner int
	deadline := time.Now().Add(15 * time.Second)
	for {
		owner, _ = cl.OwnerSeenBy(t, slot, witness)
		if owner >= 0 && owner != victim {
			break
		}
		if time.Now().After(deadline) {
			nodes, _ := cl.Nodes[witness].Do("CLUSTER", "NODES").ToString()
			t.Fatalf("no replica promoted for slot %d after 15s; CLUSTER NODES on %s:\n%s", slot, cl.Nodes[witness].Addr(), nodes)
		}
		time.Sleep(20 * time.Millisecond) // paces the polling for the promotion
	}
	t.Logf("replica %s promoted %v after the kill", cl.Nodes[owner].Addr(), time.Since(killed).Round(time.Millisecond))
	eventually(t, 10*time.Second, func() bool {
		return a.Ready() && redistest.NumSub(t, cl.Nodes[owner].Client(), ch, true) == 1
	}, "ready and subscribed on the promoted master")
	t.Logf("resubscribed on the new master %v after the kill", time.Since(killed).Round(time.Millisecond))
	eventually(t, 5*time.Second, func() bool {
		// Publish again until one arrives (one published while the
		// cluster still settles may be lost); the sleep paces the retries.
		a.Publish(ch, []byte(`"after failover"`), func(error) {})
		time.Sleep(20 * time.Millisecond)
		return sa.has(ch, `"after failover"`)
	}, "delivery after the failover")
	a.mu.Lock()
	_, stale := a.shards[cl.Nodes[victim].Addr()]
	a.mu.Unlock()
	if stale {
		t.Fatal("the dead master still has a subscription connection")
	}
}
