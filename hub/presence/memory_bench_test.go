package presence

import (
	"fmt"
	"runtime"
	"testing"
)

// BenchmarkMemoryStoreMember reports what one member costs the store
// (B/member: heap after joining 10,000 members of one channel, each its
// own user with a 16-byte info, over the heap before, per member). The
// strings are made before the measurement: the hub passes the connection's
// user string and a freshly made id, so the id's bytes count (conn_B)
// while the user's and the info's are the connection's anyway.
func BenchmarkMemoryStoreMember(b *testing.B) {
	const n = 10_000
	ms := make([]Member, n)
	info := []byte(`{"name":"Alice"}`)
	for i := range ms {
		ms[i] = Member{Conn: fmt.Sprintf("gw-1.%d", 1_000_000+i), User: fmt.Sprintf("user-%06d", i), Info: info}
	}
	var perMember float64
	for b.Loop() {
		s := NewMemoryStore()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, m := range ms {
			s.Join("chat:room", m)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perMember = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(s)
	}
	b.ReportMetric(perMember, "B/member")
	b.ReportMetric(float64(len(ms[0].Conn)), "conn_B")
}

// BenchmarkMemoryStoreStats10k: presence_stats at the store with 10,000
// members: counts kept incrementally, so a map lookup under a lock.
func BenchmarkMemoryStoreStats10k(b *testing.B) {
	s := NewMemoryStore()
	for i := range 10_000 {
		s.Join("chat:room", Member{Conn: fmt.Sprintf("gw-1.%d", i), User: fmt.Sprintf("user-%d", i%5000)})
	}
	var got Stats
	for b.Loop() {
		s.Stats("chat:room", func(st Stats, _ error) { got = st })
	}
	if got != (Stats{10_000, 5000}) {
		b.Fatalf("stats %+v", got)
	}
}
