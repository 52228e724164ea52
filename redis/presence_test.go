package redis

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/wshub/wshub/hub/presence"
	"github.com/wshub/wshub/redis/redistest"
)

var fastPresence = PresenceConfig{TTL: 30 * time.Second, RefreshTick: 100 * time.Millisecond}

// presInstance is one gateway instance's Redis side: broker, registry and
// presence store.
type presInstance struct {
	b *Broker
	r *Registry
	p *Presence
}

func startPresence(t testing.TB, cfg Config, pcfg PresenceConfig) presInstance {
	t.Helper()
	b, _ := startBroker(t, cfg)
	r := startRegistry(t, b, fastRegistry)
	p, err := NewPresence(r, pcfg)
	must(t, err)
	return presInstance{b, r, p}
}

func syncPres(t testing.TB, ps ...*Presence) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range ps {
		must(t, p.Sync(ctx))
	}
}

func queryMembers(p *Presence, channel string) ([]presence.Member, error) {
	ch := make(chan struct{})
	var out []presence.Member
	var err error
	p.Members(channel, func(m []presence.Member, e error) { out, err = m, e; close(ch) })
	<-ch
	return out, err
}

func queryStats(p *Presence, channel string) (presence.Stats, error) {
	ch := make(chan struct{})
	var out presence.Stats
	var err error
	p.Stats(channel, func(s presence.Stats, e error) { out, err = s, e; close(ch) })
	<-ch
	return out, err
}

// memberList is channel's members as sorted "conn user info" strings.
func memberList(t testing.TB, p *Presence, channel string) []string {
	t.Helper()
	ms, err := queryMembers(p, channel)
	must(t, err)
	var out []string
	for _, m := range ms {
		out = append(out, m.Conn+" "+m.User+" "+string(m.Info))
	}
	slices.Sort(out)
	return out
}

func statsOf(t testing.TB, p *Presence, channel string) presence.Stats {
	t.Helper()
	st, err := queryStats(p, channel)
	must(t, err)
	return st
}

func join(p *Presence, channel, conn, user, info string) {
	m := presence.Member{Conn: conn, User: user}
	if info != "" {
		m.Info = []byte(info)
	}
	p.Join(channel, m)
}

func TestPresenceAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	a := startPresence(t, Config{URL: srv.URL(), InstanceID: "pa"}, fastPresence)
	b := startPresence(t, Config{URL: srv.URL(), InstanceID: "pb"}, fastPresence)

	join(a.p, "room", "pa.1", "alice", `{"name":"Alice"}`)
	join(a.p, "room", "pa.2", "alice", "")
	join(a.p, "room", "pa.3", "", "")
	join(b.p, "room", "pb.1", "alice", "")
	join(b.p, "room", "pb.2", "bob", `{"n":1}`)
	join(b.p, "other", "pb.2", "bob", "")
	join(a.p, "room", "pa.9", "carol", "")
	a.p.Leave("room", "pa.9") // coalesced: never reaches Redis
	syncPres(t, a.p, b.p)

	want := []string{`pa.1 alice {"name":"Alice"}`, "pa.2 alice ", "pa.3  ", "pb.1 alice ", `pb.2 bob {"n":1}`}
	for _, p := range []*Presence{a.p, b.p} {
		if got := memberList(t, p, "room"); !slices.Equal(got, want) {
			t.Fatalf("members %q, want %q", got, want)
		}
		if st := statsOf(t, p, "room"); st != (presence.Stats{Conns: 5, Users: 2}) {
			t.Fatalf("stats %+v, want 5 conns, 2 users", st)
		}
	}
	if ms, err := queryMembers(a.p, "pa.3"); err != nil || len(ms) != 0 {
		t.Fatalf("members of a channel nobody joined: %v %v", ms, err)
	}
	if n, _ := srv.Do("HEXISTS", "ws:presc:pa:{room}", "pa.9").AsInt64(); n != 0 {
		t.Fatal("join+leave in one batch reached Redis")
	}
	for _, k := range []string{"ws:pres:{room}", "ws:presc:pa:{room}", "ws:presu:pa:{room}", "ws:presn:{room}"} {
		if ttl, _ := srv.Do("PTTL", k).AsInt64(); ttl <= 0 || ttl > fastPresence.TTL.Milliseconds() {
			t.Fatalf("%s PTTL %d", k, ttl)
		}
	}

	// alice leaves pb but stays on pa; bob's info changes; pa.3 leaves.
	b.p.Leave("room", "pb.1")
	join(b.p, "room", "pb.2", "bob", `{"n":2}`)
	a.p.Leave("room", "pa.3")
	syncPres(t, a.p, b.p)
	want = []string{`pa.1 alice {"name":"Alice"}`, "pa.2 alice ", `pb.2 bob {"n":2}`}
	if got := memberList(t, b.p, "room"); !slices.Equal(got, want) {
		t.Fatalf("members after leaves %q, want %q", got, want)
	}
	if st := statsOf(t, a.p, "room"); st != (presence.Stats{Conns: 3, Users: 2}) {
		t.Fatalf("stats after leaves %+v", st)
	}
	// The connection changes user: bob's only member becomes dave's.
	join(b.p, "room", "pb.2", "dave", "")
	syncPres(t, b.p)
	if n, _ := srv.Do("ZSCORE", "ws:presn:{room}", "bob").AsInt64(); n != 0 {
		t.Fatalf("bob still counted (%d) after his member became dave's", n)
	}
	if st := statsOf(t, a.p, "room"); st != (presence.Stats{Conns: 3, Users: 2}) {
		t.Fatalf("stats after the user change %+v", st)
	}

	// The last member of an instance leaves: its keys go.
	b.p.Leave("other", "pb.2")
	syncPres(t, b.p)
	for _, k := range []string{"ws:pres:{other}", "ws:presc:pb:{other}", "ws:presu:pb:{other}", "ws:presn:{other}"} {
		if n, _ := srv.Do("EXISTS", k).AsInt64(); n != 0 {
			t.Fatalf("%s still exists after the last member left", k)
		}
	}
}

// A closed instance's members are gone at once; a crashed one's (no Close,
// heartbeat stopped) within the registry's heartbeat TTL, while its keys
// still exist; the first query after that removes them and its users'
// share of the counts.
func TestPresenceCloseAndCrash(t *testing.T) {
	srv := redistest.Start(t)
	a := startPresence(t, Config{URL: srv.URL(), InstanceID: "ca"}, fastPresence)
	b := startPresence(t, Config{URL: srv.URL(), InstanceID: "cb"}, fastPresence)
	c := startPresence(t, Config{URL: srv.URL(), InstanceID: "cc"}, fastPresence)
	join(a.p, "room", "ca.1", "alice", "")
	join(b.p, "room", "cb.1", "alice", "")
	join(b.p, "room", "cb.2", "bob", "")
	join(c.p, "room", "cc.1", "carol", "")
	join(c.p, "room", "cc.2", "alice", "")
	syncPres(t, a.p, b.p, c.p)
	if st := statsOf(t, a.p, "room"); st != (presence.Stats{Conns: 5, Users: 3}) {
		t.Fatalf("stats %+v", st)
	}

	must(t, c.p.Close())
	if got, want := memberList(t, a.p, "room"), []string{"ca.1 alice ", "cb.1 alice ", "cb.2 bob "}; !slices.Equal(got, want) {
		t.Fatalf("members right after cc closed %q, want %q", got, want)
	}
	if st := statsOf(t, a.p, "room"); st != (presence.Stats{Conns: 3, Users: 2}) {
		t.Fatalf("stats right after cc closed %+v", st)
	}
	if n, _ := srv.Do("EXISTS", "ws:presc:cc:{room}", "ws:presu:cc:{room}").AsInt64(); n != 0 {
		t.Fatal("cc's keys still exist after Close")
	}

	b.p.halt() // what kill -9 looks like to the others
	b.r.halt()
	crashed := time.Now()
	took := eventually(t, 3*time.Second, func() bool {
		st, err := queryStats(a.p, "room")
		return err == nil && st == presence.Stats{Conns: 1, Users: 1}
	}, "cb's members fenced")
	t.Logf("crashed instance's members gone after %v (heartbeat TTL %v)", time.Since(crashed).Round(time.Millisecond), fastRegistry.HeartbeatTTL)
	if took > fastRegistry.HeartbeatTTL+200*time.Millisecond {
		t.Fatalf("fencing took %v, want within one heartbeat TTL (%v)", took, fastRegistry.HeartbeatTTL)
	}
	if got := memberList(t, a.p, "room"); !slices.Equal(got, []string{"ca.1 alice "}) {
		t.Fatalf("members after cb crashed %q", got)
	}
	if m, _ := srv.Do("SISMEMBER", "ws:pres:{room}", "cb").AsInt64(); m != 0 {
		t.Fatal("the dead instance is still in the channel's set after a query")
	}
	if n, _ := srv.Do("EXISTS", "ws:presc:cb:{room}").AsInt64(); n != 0 {
		t.Fatal("the dead instance's members were not deleted")
	}
	if n, _ := srv.Do("ZSCORE", "ws:presn:{room}", "alice").AsInt64(); n != 1 {
		t.Fatalf("alice counted %d times after the rebuild, want 1 (ca)", n)
	}
}

// Stats stays exact with 10,000 members on two instances, users shared
// across them and repeated within each, through leaves and a crash.
func TestPresenceStats10k(t *testing.T) {
	srv := redistest.Start(t)
	a := startPresence(t, Config{URL: srv.URL(), InstanceID: "ka"}, fastPresence)
	b := startPresence(t, Config{URL: srv.URL(), InstanceID: "kb"}, fastPresence)
	const n = 10000
	insts := []presInstance{a, b}
	users := func(keep func(i int) bool) int {
		seen := map[string]bool{}
		for i := range n {
			if keep(i) {
				seen[userOf(i)] = true
			}
		}
		return len(seen)
	}
	for i := range n {
		join(insts[i%2].p, "big", connOf(i), userOf(i), `{"i":`+strconv.Itoa(i)+`}`)
	}
	syncPres(t, a.p, b.p)
	if st, want := statsOf(t, a.p, "big"), users(func(int) bool { return true }); st != (presence.Stats{Conns: n, Users: want}) {
		t.Fatalf("stats %+v, want %d conns, %d users", st, n, want)
	}
	ms, err := queryMembers(b.p, "big")
	must(t, err)
	if len(ms) != n {
		t.Fatalf("%d members, want %d", len(ms), n)
	}

	// Every connection whose number is a multiple of 3 leaves.
	for i := 0; i < n; i += 3 {
		insts[i%2].p.Leave("big", connOf(i))
	}
	syncPres(t, a.p, b.p)
	left := func(i int) bool { return i%3 != 0 }
	if st, want := statsOf(t, b.p, "big"), users(left); st != (presence.Stats{Conns: n - (n+2)/3, Users: want}) {
		t.Fatalf("stats after leaves %+v, want %d users", st, want)
	}

	b.p.halt()
	b.r.halt()
	onA := func(i int) bool { return left(i) && i%2 == 0 }
	conns := 0
	for i := range n {
		if onA(i) {
			conns++
		}
	}
	want := presence.Stats{Conns: conns, Users: users(onA)}
	eventually(t, 3*time.Second, func() bool {
		st, err := queryStats(a.p, "big")
		return err == nil && st == want
	}, fmt.Sprintf("stats without the crashed instance: %+v", want))
}

func connOf(i int) string { return "c" + strconv.Itoa(i) }

// userOf gives 10,000 connections 3,000 users: each user has connections
// on both instances (i%2) for some users, several on one for others.
func userOf(i int) string { return "u" + strconv.Itoa(i%3000) }

// Redis restarting empty, or our keys deleted behind our back (a reader that
// took us for dead while our heartbeat had lapsed), gets the members back.
func TestPresenceRewrites(t *testing.T) {
	srv := redistest.Start(t)
	cfg := PresenceConfig{TTL: 900 * time.Millisecond, RefreshTick: 50 * time.Millisecond}
	a := startPresence(t, Config{URL: srv.URL(), InstanceID: "wa"}, cfg)
	b := startPresence(t, Config{URL: srv.URL(), InstanceID: "wb"}, cfg)
	join(a.p, "room", "wa.1", "erin", "")
	join(b.p, "room", "wb.1", "erin", "")
	join(b.p, "room", "wb.2", "frank", "")
	syncPres(t, a.p, b.p)
	full := presence.Stats{Conns: 3, Users: 2}
	if st := statsOf(t, a.p, "room"); st != full {
		t.Fatalf("stats %+v", st)
	}

	// The TTLs are renewed: after three TTLs the keys are still there.
	deadline := time.Now().Add(3 * cfg.TTL)
	for time.Now().Before(deadline) {
		if n, _ := srv.Do("EXISTS", "ws:presc:wa:{room}", "ws:presu:wa:{room}", "ws:pres:{room}", "ws:presn:{room}").AsInt64(); n != 4 {
			t.Fatalf("%d of 4 keys left: TTLs not renewed", n)
		}
		time.Sleep(50 * time.Millisecond)
	}

	must(t, srv.Do("DEL", "ws:presc:wb:{room}", "ws:presu:wb:{room}", "ws:presn:{room}").Error())
	must(t, srv.Do("SREM", "ws:pres:{room}", "wb").Error())
	eventually(t, 3*time.Second, func() bool {
		st, err := queryStats(a.p, "room")
		return err == nil && st == full
	}, "wb's members and the counts rewritten after their keys were deleted")

	srv.Kill()
	srv.Start()
	eventually(t, 5*time.Second, func() bool {
		st, err := queryStats(a.p, "room")
		return err == nil && st == full
	}, "members rewritten after Redis restarted empty")
	if got := memberList(t, b.p, "room"); !slices.Equal(got, []string{"wa.1 erin ", "wb.1 erin ", "wb.2 frank "}) {
		t.Fatalf("members after the restart %q", got)
	}
}

// MaxQueries bounds the queries waiting on Redis; one more fails at once.
func TestPresenceQueryLimit(t *testing.T) {
	srv := redistest.Start(t)
	a := startPresence(t, Config{URL: srv.URL(), InstanceID: "qa"}, PresenceConfig{MaxQueries: 1})
	a.p.sem <- struct{}{} // one query in flight
	if _, err := queryStats(a.p, "room"); err == nil {
		t.Fatal("a query beyond MaxQueries was accepted")
	}
	<-a.p.sem
	if _, err := queryStats(a.p, "room"); err != nil {
		t.Fatal(err)
	}
}
