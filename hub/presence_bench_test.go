package hub

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/wshub/wshub/hub/access"
	"github.com/wshub/wshub/hub/presence"
)

// presenceBenchHub is a hub on one queue loop whose open:room channel has
// n members, each its own user with a 16-byte info claim (set as the
// token would), and the connection that asks.
func presenceBenchHub(b *testing.B, n int) (*Hub, *queueLoop, *fakeConn) {
	pol, _ := access.NewPolicy(access.Namespace{}, presenceNamespaces, true)
	h, loops := testHub(b, newFakeBroker(), 1, Config{Policy: pol, Presence: presence.NewMemoryStore(), MaxPresenceAnswer: 4 << 20})
	for i := range n {
		c := &fakeConn{id: uint64(i + 1), count: true}
		cs := h.state(c)
		cs.ident.User = fmt.Sprintf("user-%06d", i)
		h.setInfo(cs, []byte(`{"name":"Alice"}`))
		h.OnOpen(c)
		h.OnText(c, []byte(`{"op":"subscribe","channel":"open:room"}`))
	}
	loops[0].run()
	asker := &fakeConn{id: uint64(n + 1), count: true}
	h.OnOpen(asker)
	return h, loops[0], asker
}

// BenchmarkPresenceQuery10k: a client's presence and presence_stats with
// 10,000 members on the memory store, from the command to the answer
// handed to the connection (the store's copy, the encoding, the post).
func BenchmarkPresenceQuery10k(b *testing.B) {
	for _, q := range []struct{ name, cmd string }{
		{"presence_stats", `{"op":"presence_stats","channel":"open:room","id":1}`},
		{"presence", `{"op":"presence","channel":"open:room","id":1}`},
	} {
		b.Run(q.name, func(b *testing.B) {
			h, loop, asker := presenceBenchHub(b, 10_000)
			cmd := []byte(q.cmd)
			for b.Loop() {
				h.OnText(asker, cmd)
				loop.run()
			}
			if asker.n.Load() == 0 {
				b.Fatal("no answer")
			}
		})
	}
}

// BenchmarkPresenceInfoPerConn reports what keeping a connection's info
// claim costs (B/conn: the loop's infos entry, the claim's 16 bytes
// shared with the verifier's decode excluded) over 10,000 connections.
func BenchmarkPresenceInfoPerConn(b *testing.B) {
	const n = 10_000
	info := []byte(`{"name":"Alice"}`)
	var per float64
	for b.Loop() {
		pol, _ := access.NewPolicy(access.Namespace{}, presenceNamespaces, true)
		h, _ := testHub(b, newFakeBroker(), 1, Config{Policy: pol, Presence: presence.NewMemoryStore()})
		css := make([]*connData, n)
		for i := range css {
			css[i] = h.state(&fakeConn{id: uint64(i + 1)})
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, cs := range css {
			h.setInfo(cs, info)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		per = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
		runtime.KeepAlive(css)
		runtime.KeepAlive(h)
	}
	b.ReportMetric(per, "B/conn")
}
