package redis

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/wshub/wshub/hub/presence"
	"github.com/wshub/wshub/redis/redistest"
)

// On a cluster a channel's presence keys live on the channel's slot (the
// transactions and the rebuild script need them together), for channels on
// every master and for a name with braces; a crashed instance is fenced and
// removed there too.
func TestPresenceCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 0)
	a := startPresence(t, Config{ClusterAddrs: cl.Addrs(), InstanceID: "ka"}, fastPresence)
	b := startPresence(t, Config{ClusterAddrs: cl.Addrs(), InstanceID: "kb"}, fastPresence)

	chans := []string{"odd{name}"}
	owners := map[int]int{}
	for i := 0; len(owners) < 3 || len(chans) < 7; i++ {
		ch := "room:" + strconv.Itoa(i)
		o, _ := cl.Owner(t, slotOf(ch))
		owners[o]++
		chans = append(chans, ch)
	}
	for _, ch := range chans {
		join(a.p, ch, "ka.1", "alice", `{"x":1}`)
		join(b.p, ch, "kb.1", "alice", "")
		join(b.p, ch, "kb.2", "bob", "")
	}
	syncPres(t, a.p, b.p)

	for _, ch := range chans {
		slot := slotOf(ch)
		k, kb := newPresKeys("ka", ch), newPresKeys("kb", ch)
		for _, key := range []string{k.insts, k.count, k.conns, k.users, kb.conns, kb.users} {
			if got := cl.KeySlot(t, key); got != slot {
				t.Fatalf("%s in slot %d, the channel %q in %d", key, got, ch, slot)
			}
		}
		o, _ := cl.Owner(t, slot)
		if n, _ := cl.Nodes[o].Do("EXISTS", k.insts, k.count, k.conns, k.users, kb.conns, kb.users).AsInt64(); n != 6 {
			t.Fatalf("%d of %q's 6 keys on its slot's master", n, ch)
		}
		want := []string{`ka.1 alice {"x":1}`, "kb.1 alice ", "kb.2 bob "}
		if got := memberList(t, a.p, ch); !slices.Equal(got, want) {
			t.Fatalf("%q members %q, want %q", ch, got, want)
		}
		if st := statsOf(t, b.p, ch); st != (presence.Stats{Conns: 3, Users: 2}) {
			t.Fatalf("%q stats %+v", ch, st)
		}
	}

	b.p.halt()
	b.r.halt()
	for _, ch := range chans {
		eventually(t, 3*time.Second, func() bool {
			st, err := queryStats(a.p, ch)
			return err == nil && st == presence.Stats{Conns: 1, Users: 1}
		}, ch+": kb fenced and removed")
	}
	o, _ := cl.Owner(t, slotOf(chans[1]))
	if n, _ := cl.Nodes[o].Do("EXISTS", newPresKeys("kb", chans[1]).conns).AsInt64(); n != 0 {
		t.Fatal("the dead instance's members were not deleted on the cluster")
	}
}
