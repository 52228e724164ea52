package redis

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/wshub/wshub/redis/redistest"
)

func startRegistry(t testing.TB, b *Broker, cfg RegistryConfig) *Registry {
	t.Helper()
	r, err := NewRegistry(b, cfg)
	must(t, err)
	return r
}

func syncReg(t testing.TB, r *Registry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	must(t, r.Sync(ctx))
}

func lookup(r *Registry, id string) (ConnInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return r.Lookup(ctx, id)
}

func userConnIDs(t testing.TB, r *Registry, user string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cs, err := r.UserConns(ctx, user)
	must(t, err)
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.Instance+"/"+c.ID)
	}
	slices.Sort(ids)
	return ids
}

var fastRegistry = RegistryConfig{HeartbeatInterval: 100 * time.Millisecond, HeartbeatTTL: 400 * time.Millisecond, TTL: 30 * time.Second, RefreshTick: 100 * time.Millisecond}

func TestRegistryAddRemoveLookup(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := startBroker(t, Config{URL: srv.URL(), InstanceID: "ra"})
	b, _ := startBroker(t, Config{URL: srv.URL(), InstanceID: "rb"})
	ra := startRegistry(t, a, fastRegistry)
	rb := startRegistry(t, b, fastRegistry)

	start := time.Now().Add(-time.Second)
	ra.Add("c1", "alice")
	ra.Add("c2", "alice")
	ra.Add("c3", "")
	rb.Add("c4", "alice")
	ra.Add("gone", "bob")
	ra.Remove("gone") // coalesced: never reaches Redis
	syncReg(t, ra)
	syncReg(t, rb)

	info, err := lookup(rb, "c1")
	must(t, err)
	if info.Instance != "ra" || info.User != "alice" || info.ConnectedAt.Before(start) || info.ConnectedAt.After(time.Now()) {
		t.Fatalf("lookup c1 from the other instance: %+v", info)
	}
	if _, err := lookup(ra, "gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup of an added-then-removed conn: %v", err)
	}
	if n, _ := srv.Do("EXISTS", "ws:conn:gone").AsInt64(); n != 0 {
		t.Fatal("add+remove in one batch reached Redis")
	}
	if got, want := userConnIDs(t, ra, "alice"), []string{"ra/c1", "ra/c2", "rb/c4"}; !slices.Equal(got, want) {
		t.Fatalf("alice's connections %v, want %v", got, want)
	}
	ttl, _ := srv.Do("PTTL", "ws:conn:c1").AsInt64()
	if ttl <= 0 || ttl > fastRegistry.TTL.Milliseconds() {
		t.Fatalf("ws:conn:c1 PTTL %d", ttl)
	}

	ra.Remove("c2")
	syncReg(t, ra)
	if _, err := lookup(rb, "c2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup after Remove: %v", err)
	}
	if got, want := userConnIDs(t, rb, "alice"), []string{"ra/c1", "rb/c4"}; !slices.Equal(got, want) {
		t.Fatalf("alice's connections after remove %v, want %v", got, want)
	}

	eventually(t, 2*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		insts, err := ra.Instances(ctx)
		if err != nil || len(insts) != 2 {
			return false
		}
		conns := map[string]int{}
		for _, in := range insts {
			conns[in.ID] = in.Conns
		}
		return conns["ra"] == 2 && conns["rb"] == 1
	}, "Instances lists ra with 2 and rb with 1 connections")
}

// A crashed instance (stopped without cleanup) is fenced within one heartbeat
// TTL, while its entries still exist in Redis; a closed one is gone at once.
func TestRegistryFencingAndClose(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := startBroker(t, Config{URL: srv.URL(), InstanceID: "fa"})
	b, _ := startBroker(t, Config{URL: srv.URL(), InstanceID: "fb"})
	c, _ := startBroker(t, Config{URL: srv.URL(), InstanceID: "fc"})
	ra := startRegistry(t, a, fastRegistry)
	rb := startRegistry(t, b, fastRegistry)
	rc := startRegistry(t, c, fastRegistry)
	ra.Add("a1", "dave")
	rc.Add("c1", "dave")
	syncReg(t, ra)
	syncReg(t, rc)
	if _, err := lookup(rb, "a1"); err != nil {
		t.Fatal(err)
	}

	ra.halt() // what kill -9 looks like to the others
	crashed := time.Now()
	took := eventually(t, 2*time.Second, func() bool {
		_, err := lookup(rb, "a1")
		return errors.Is(err, ErrNotFound)
	}, "a1 fenced")
	t.Logf("crashed instance fenced after %v (heartbeat TTL %v)", time.Since(crashed).Round(time.Millisecond), fastRegistry.HeartbeatTTL)
	if took > fastRegistry.HeartbeatTTL+150*time.Millisecond {
		t.Fatalf("fencing took %v, want within one heartbeat TTL (%v)", took, fastRegistry.HeartbeatTTL)
	}
	if n, _ := srv.Do("EXISTS", "ws:conn:a1").AsInt64(); n != 1 {
		t.Fatal("ws:conn:a1 vanished: the test would not show fencing")
	}
	if got := userConnIDs(t, rb, "dave"); !slices.Equal(got, []string{"fc/c1"}) {
		t.Fatalf("dave's connections after fa crashed: %v", got)
	}

	must(t, rc.Close())
	if _, err := lookup(rb, "c1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup right after Close: %v", err)
	}
	for _, k := range []string{"ws:conn:c1", "ws:instance:fc"} {
		if n, _ := srv.Do("EXISTS", k).AsInt64(); n != 0 {
			t.Fatalf("%s still exists after Close", k)
		}
	}
	if m, _ := srv.Do("SISMEMBER", "ws:user:dave", "fc|c1").AsInt64(); m != 0 {
		t.Fatal("user set still holds fc|c1 after Close")
	}
}

// A Redis that restarts empty gets this instance's entries back.
func TestRegistryRewritesAfterRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := startBroker(t, Config{URL: srv.URL(), InstanceID: "wa"})
	ra := startRegistry(t, a, fastRegistry)
	ra.Add("w1", "erin")
	syncReg(t, ra)
	srv.Kill()
	srv.Start()
	eventually(t, 5*time.Second, func() bool {
		info, err := lookup(ra, "w1")
		return err == nil && info.User == "erin"
	}, "entries rewritten after the restart")
	if got := userConnIDs(t, ra, "erin"); !slices.Equal(got, []string{"wa/w1"}) {
		t.Fatalf("user set after restart: %v", got)
	}
}

// A Remove whose write Redis refused is sent again once Redis takes writes:
// the closed connection must not stay resolvable until its TTL.
func TestRegistryRetriesFailedRemove(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := startBroker(t, Config{URL: srv.URL(), InstanceID: "ra"})
	ra := startRegistry(t, a, fastRegistry)
	ra.Add("c1", "alice")
	ra.Add("c2", "alice")
	syncReg(t, ra)
	if _, err := lookup(ra, "c1"); err != nil {
		t.Fatal(err)
	}

	// With no replica connected, every write is refused (NOREPLICAS).
	must(t, srv.Do("CONFIG", "SET", "min-replicas-to-write", "1").Error())
	ra.Remove("c1")
	syncReg(t, ra)
	if n, _ := srv.Do("EXISTS", "ws:conn:c1").AsInt64(); n != 1 {
		t.Fatal("the remove was not refused: the test does not exercise a failed write")
	}
	must(t, srv.Do("CONFIG", "SET", "min-replicas-to-write", "0").Error())

	eventually(t, 3*time.Second, func() bool {
		n, _ := srv.Do("EXISTS", "ws:conn:c1").AsInt64()
		return n == 0
	}, "ws:conn:c1 deleted after Redis took writes again")
	eventually(t, 3*time.Second, func() bool {
		_, err := lookup(ra, "c2")
		return err == nil
	}, "c2 resolvable again")
	if _, err := lookup(ra, "c1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup of the removed conn: %v, want ErrNotFound", err)
	}
	if got, want := userConnIDs(t, ra, "alice"), []string{"ra/c2"}; !slices.Equal(got, want) {
		t.Fatalf("alice's connections %v, want %v", got, want)
	}
}

// The hub's ids, "<instance>.<n>", take the compact path (no id stored):
// the same entries in Redis, through pages and index growth, a batch that
// adds and removes, a Redis restart and Close.
func TestRegistryHubIDs(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := startBroker(t, Config{URL: srv.URL(), InstanceID: "gw.1"})
	b, _ := startBroker(t, Config{URL: srv.URL(), InstanceID: "gw.2"})
	ra := startRegistry(t, a, fastRegistry)
	rb := startRegistry(t, b, fastRegistry)
	const n = 700 // more than two pages of entries
	id := func(i int) string { return "gw.1." + strconv.Itoa(i) }
	for i := 1; i <= n; i++ {
		user := ""
		if i%3 == 0 {
			user = "u" + strconv.Itoa(i%7)
		}
		ra.Add(id(i), user)
	}
	ra.Add(id(n+1), "u1")
	ra.Remove(id(n + 1)) // coalesced
	syncReg(t, ra)
	for i := 1; i <= n; i += 2 {
		ra.Remove(id(i))
	}
	ra.Remove("gw.1.0007") // not the hub's form: no such entry
	syncReg(t, ra)

	check := func(when string) {
		t.Helper()
		keys, err := srv.Do("KEYS", "ws:conn:*").AsStrSlice()
		must(t, err)
		if len(keys) != n/2 {
			t.Fatalf("%s: %d conn keys in Redis, want %d", when, len(keys), n/2)
		}
		info, err := lookup(rb, id(6))
		must(t, err)
		if info.ID != id(6) || info.Instance != "gw.1" || info.User != "u6" || info.ConnectedAt.IsZero() {
			t.Fatalf("%s: lookup %+v", when, info)
		}
		if _, err := lookup(rb, id(7)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: lookup of a removed conn: %v", when, err)
		}
		if _, err := lookup(rb, id(n+1)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: lookup of a coalesced conn: %v", when, err)
		}
		var want []string
		for i := 2; i <= n; i += 2 {
			if i%3 == 0 && i%7 == 6 {
				want = append(want, "gw.1/"+id(i))
			}
		}
		slices.Sort(want)
		if got := userConnIDs(t, rb, "u6"); !slices.Equal(got, want) {
			t.Fatalf("%s: u6's connections %v, want %v", when, got, want)
		}
	}
	check("after the writes")

	before, _ := lookup(rb, id(6))
	srv.Kill()
	srv.Start()
	eventually(t, 5*time.Second, func() bool {
		n, _ := srv.Do("DBSIZE").AsInt64()
		_, err := lookup(rb, id(6))
		return n > 0 && err == nil
	}, "entries rewritten after the restart")
	syncReg(t, ra)
	check("after the restart")
	if after, _ := lookup(rb, id(6)); !after.ConnectedAt.Equal(before.ConnectedAt) {
		t.Fatalf("connected_at rewritten as %v, was %v", after.ConnectedAt, before.ConnectedAt)
	}

	must(t, ra.Close())
	if len(ra.w.keys.ids) != 0 { // the writer has stopped
		t.Fatalf("hub ids were stored as foreign ids: %d", len(ra.w.keys.ids))
	}
	if keys, _ := srv.Do("KEYS", "ws:conn:*").AsStrSlice(); len(keys) != 0 {
		t.Fatalf("%d conn keys left after Close", len(keys))
	}
	if members, _ := srv.Do("SMEMBERS", "ws:user:u6").AsStrSlice(); len(members) != 0 {
		t.Fatalf("u6's set after Close: %v", members)
	}
}

// With a pipeline of 5 commands, pipelines end inside an entry's commands.
// Each entry must still get its own hash, TTLs and set member, for both id
// forms, with and without a user, in a batch that also removes and re-adds.
func TestRegistrySmallPipelines(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := startBroker(t, Config{URL: srv.URL(), InstanceID: "gw.1"})
	cfg := fastRegistry
	cfg.MaxPipeline = 5
	r := startRegistry(t, a, cfg)
	ids := []string{"gw.1.1", "x-2", "gw.1.3", "x-4", "gw.1.5"}
	users := []string{"amy", "", "bo", "amy", ""}
	for i, id := range ids {
		r.Add(id, users[i])
	}
	syncReg(t, r)
	r.Remove("gw.1.3")
	r.Add("gw.1.3", "cy") // same id, another user, in the batch of its remove
	users[2] = "cy"
	syncReg(t, r)
	for i, id := range ids {
		m, err := srv.Do("HGETALL", "ws:conn:"+id).AsStrMap()
		must(t, err)
		if m["instance"] != "gw.1" || m["user"] != users[i] || m["connected_at"] == "" {
			t.Fatalf("ws:conn:%s = %v", id, m)
		}
		if ttl, _ := srv.Do("PTTL", "ws:conn:"+id).AsInt64(); ttl <= 0 {
			t.Fatalf("ws:conn:%s PTTL %d", id, ttl)
		}
	}
	for user, want := range map[string][]string{"amy": {"gw.1/gw.1.1", "gw.1/x-4"}, "bo": nil, "cy": {"gw.1/gw.1.3"}} {
		if got := userConnIDs(t, r, user); !slices.Equal(got, want) {
			t.Fatalf("%s's connections %v, want %v", user, got, want)
		}
		if ttl, _ := srv.Do("PTTL", "ws:user:"+user).AsInt64(); want != nil && ttl <= 0 {
			t.Fatalf("ws:user:%s PTTL %d", user, ttl)
		}
	}
}
