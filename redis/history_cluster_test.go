package redis

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/wshub/wshub/hub/history"
	"github.com/wshub/wshub/redis/redistest"
)

// On a cluster a channel's stream, meta and shard channel live on one
// master: a history publication from one instance reaches the other at its
// offset and reads back, on every master; a channel whose slot moves to
// another master is reported restored once it is subscribed there.
func TestClusterHistory(t *testing.T) {
	cl := redistest.StartCluster(t, 0)
	a, sa := startHistBroker(t, Config{ClusterAddrs: cl.Addrs(), InstanceID: "ca"})
	b, sb := startHistBroker(t, Config{ClusterAddrs: cl.Addrs(), InstanceID: "cb"})
	owners := map[int]string{}
	for i := 0; len(owners) < 3; i++ {
		ch := "ch:" + strconv.Itoa(i)
		if o, _ := cl.Owner(t, slotOf(ch)); owners[o] == "" {
			owners[o] = ch
		}
	}
	for node, ch := range owners {
		stream, meta := histKeys(ch)
		for _, k := range []string{stream, meta} {
			if got := cl.KeySlot(t, k); got != cl.KeySlot(t, ch) {
				t.Fatalf("CLUSTER KEYSLOT %s = %d, channel %s in %d", k, got, ch, cl.KeySlot(t, ch))
			}
		}
		must(t, subscribe(t, a, ch))
		must(t, subscribe(t, b, ch))
		p1 := publishHist(t, b, ch, `"one"`, histKeep)
		p2 := publishHist(t, a, ch, `"two"`, histKeep)
		if p1.Offset != 1 || p2 != (history.Position{Offset: 2, Epoch: p1.Epoch}) {
			t.Fatalf("%s: positions %+v %+v", ch, p1, p2)
		}
		if n, err := cl.Nodes[node].Do("EXISTS", stream, meta).AsInt64(); err != nil || n != 2 {
			t.Fatalf("%s: %d of its keys on its master %s (%v)", ch, n, cl.Nodes[node].Addr(), err)
		}
		rd := readHist(t, b, ch, 1, 10)
		if rd.Pos != p2 || len(rd.Entries) != 1 || string(rd.Entries[0].Data) != `"two"` {
			t.Fatalf("%s: read %+v %v", ch, rd.Pos, offsets(rd))
		}
		for name, s := range map[string]*histSink{"ca": sa, "cb": sb} {
			eventually(t, 3*time.Second, func() bool { return len(s.msgs(ch)) == 2 }, "deliveries on "+name)
			if m := s.msgs(ch); m[0] != (histMsg{p1, `"one"`}) || m[1] != (histMsg{p2, `"two"`}) {
				t.Fatalf("%s on %s: %+v", ch, name, m)
			}
		}
	}

	// A slot that holds a stream moves (its keys migrate): the stream goes on
	// under its epoch, and a recovery read covers both sides of the move.
	ch := "mv:0"
	for i := 1; slotOf(ch) == slotOf(owners[0]) || slotOf(ch) == slotOf(owners[1]) || slotOf(ch) == slotOf(owners[2]); i++ {
		ch = "mv:" + strconv.Itoa(i)
	}
	must(t, subscribe(t, a, ch))
	before := publishHist(t, b, ch, `"before"`, histKeep)
	eventually(t, 3*time.Second, func() bool { return len(sa.msgs(ch)) == 1 }, "delivery before the move")
	slot := slotOf(ch)
	from, ids := cl.Owner(t, slot)
	to := (from + 1) % 3
	cl.MoveSlot(t, slot, from, to, ids)
	eventually(t, 5*time.Second, func() bool {
		return sa.resubs(ch) == 1 && redistest.NumSub(t, cl.Nodes[to].Client(), ch, true) == 1
	}, "resubscribed on the new master")
	pos := publishHist(t, b, ch, `"moved"`, histKeep)
	if pos.Epoch != before.Epoch || pos.Offset != before.Offset+1 {
		t.Fatalf("after the move %+v, before it %+v: want the next offset of the same epoch", pos, before)
	}
	eventually(t, 3*time.Second, func() bool {
		m := sa.msgs(ch)
		return len(m) == 2 && m[1] == histMsg{pos, `"moved"`}
	}, "delivery after the move")
	if rd := readHist(t, a, ch, 0, 10); rd.Pos != pos || fmt.Sprint(offsets(rd)) != "[1 2]" {
		t.Fatalf("recovery read after the move: %+v %v", rd.Pos, offsets(rd))
	}
	for _, c := range owners {
		if sa.resubs(c) != 0 || sb.resubs(c) != 0 {
			t.Fatalf("%s reported resubscribed without a loss", c)
		}
	}
}
