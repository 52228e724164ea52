package redis

import (
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wshub/wshub/hub"
	"github.com/wshub/wshub/redis/redistest"
)

// fakeConns is a hub's record of its connections: numbers in order, the
// walk's cursor an index into them.
type fakeConns struct {
	mu    sync.Mutex
	conns []hub.LocalConn // sorted by N
	cur   int
}

func (f *fakeConns) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

func (f *fakeConns) find(n uint64) (int, bool) {
	return slices.BinarySearchFunc(f.conns, n, func(c hub.LocalConn, n uint64) int { return int(c.N) - int(n) })
}

func (f *fakeConns) Has(n uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.find(n)
	return ok
}

func (f *fakeConns) Next(buf []hub.LocalConn, max int) ([]hub.LocalConn, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	wrapped := false
	for ; max > 0 && len(f.conns) > 0; max-- {
		if f.cur >= len(f.conns) {
			f.cur, wrapped = 0, true
		}
		buf = append(buf, f.conns[f.cur])
		f.cur++
	}
	return buf, wrapped
}

func (f *fakeConns) Parts() int { return 2 }

func (f *fakeConns) Part(buf []hub.LocalConn, i int) []hub.LocalConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		if int(c.N)%2 == i {
			buf = append(buf, c)
		}
	}
	return buf
}

// open is the hub's register: the Registrar first, then the record.
func (f *fakeConns) open(r *Registry, n uint64, user string, at int64) {
	r.Opened(n, user, at)
	f.mu.Lock()
	i, _ := f.find(n)
	f.conns = slices.Insert(f.conns, i, hub.LocalConn{N: n, User: user, ConnectedAt: at})
	f.mu.Unlock()
}

func (f *fakeConns) close(r *Registry, n uint64, user string) {
	f.mu.Lock()
	if i, ok := f.find(n); ok {
		f.conns = slices.Delete(f.conns, i, i+1)
	}
	f.mu.Unlock()
	r.Closed(n, user)
}

// The hub's connections, kept only in its record: written on Opened,
// renewed by refresh past several TTLs, deleted on Closed (not at all when
// opened and closed in one batch), rewritten all after Redis restarted
// empty, deleted at Close.
func TestRegistryWalksHubRecord(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := startBroker(t, Config{URL: srv.URL(), InstanceID: "gw"})
	cfg := fastRegistry
	cfg.TTL, cfg.RefreshTick = 1500*time.Millisecond, 50*time.Millisecond
	ra := startRegistry(t, a, cfg)
	f := &fakeConns{}
	ra.Attach(f)
	const n = 300
	at := time.Now().Truncate(time.Second).UnixMilli()
	user := func(i uint64) string {
		if i%3 == 0 {
			return "u" + strconv.FormatUint(i%7, 10)
		}
		return ""
	}
	for i := uint64(1); i <= n; i++ {
		f.open(ra, i, user(i), at)
	}
	ra.Opened(n+1, "u1", at)
	ra.Closed(n+1, "u1") // in the same batch: never written
	syncReg(t, ra)
	check := func(when string, live func(i uint64) bool) {
		t.Helper()
		for i := uint64(1); i <= n+1; i++ {
			id := "gw." + strconv.FormatUint(i, 10)
			info, err := lookup(ra, id)
			if !live(i) {
				if err == nil {
					t.Fatalf("%s: %s still registered", when, id)
				}
				continue
			}
			if err != nil || info.User != user(i) || info.ConnectedAt.UnixMilli() != at {
				t.Fatalf("%s: %s: %+v, %v", when, id, info, err)
			}
		}
	}
	all := func(i uint64) bool { return i <= n }
	check("after Opened", all)
	if n, _ := srv.Do("EXISTS", "ws:conn:gw.301").AsInt64(); n != 0 {
		t.Fatal("a connection opened and closed in one batch reached Redis")
	}
	time.Sleep(3 * cfg.TTL)
	check("after three TTLs", all)

	for i := uint64(1); i <= n; i += 2 {
		f.close(ra, i, user(i))
	}
	syncReg(t, ra)
	even := func(i uint64) bool { return i <= n && i%2 == 0 }
	check("after Closed", even)

	srv.Kill()
	srv.Start()
	eventually(t, 5*time.Second, func() bool {
		_, err := lookup(ra, "gw.300")
		return err == nil
	}, "entries rewritten after the restart")
	syncReg(t, ra)
	check("after the rewrite", even)
	if got := userConnIDs(t, ra, "u1"); len(got) == 0 {
		t.Fatal("u1's set not rewritten")
	}

	must(t, ra.Close())
	if keys, _ := srv.Do("KEYS", "ws:conn:*").AsStrSlice(); len(keys) != 0 {
		t.Fatalf("entries left after Close: %v", keys)
	}
}
