package redis

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/wshub/wshub/redis/redistest"
)

// directRec records addressed sends received by one instance.
type directRec struct {
	mu  sync.Mutex
	got []string
}

func (d *directRec) handle(conn string, data []byte) {
	d.mu.Lock()
	d.got = append(d.got, conn+"="+string(data))
	d.mu.Unlock()
}

func (d *directRec) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := slices.Clone(d.got)
	slices.Sort(out)
	return out
}

func TestAddressedSends(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := startBroker(t, Config{URL: srv.URL(), InstanceID: "da"})
	b, _ := startBroker(t, Config{URL: srv.URL(), InstanceID: "db"})
	c, _ := startBroker(t, Config{URL: srv.URL(), InstanceID: "dc"})
	var da, db, dc directRec
	a.SetDirectHandler(da.handle)
	b.SetDirectHandler(db.handle)
	c.SetDirectHandler(dc.handle)
	ra := startRegistry(t, a, fastRegistry)
	rb := startRegistry(t, b, fastRegistry)
	rc := startRegistry(t, c, fastRegistry)
	ra.Add("ca", "u1")
	rb.Add("cb", "u1")
	rb.Add("cb2", "u1")
	rb.Add("cb3", "u2")
	rc.Add("cc", "u3") // the sender's own connection, for the end marker
	syncReg(t, ra)
	syncReg(t, rb)
	syncReg(t, rc)
	// Watch every instance channel: addressed sends must go only to owners.
	admin := srv.Client()
	var envMu sync.Mutex
	var envs []string
	wctx, stopWatch := context.WithCancel(context.Background())
	go admin.Receive(wctx, admin.B().Psubscribe().Pattern("ws#inst:*").Build(), func(m rueidis.PubSubMessage) {
		if m.Message[0] == envDirect {
			envMu.Lock()
			envs = append(envs, m.Channel)
			envMu.Unlock()
		}
	})
	watched := func() []string {
		envMu.Lock()
		defer envMu.Unlock()
		return slices.Clone(envs)
	}
	eventually(t, 2*time.Second, func() bool { return numpat(t, admin) == 1 }, "watcher subscribed")
	defer stopWatch()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	must(t, rc.SendToConn(ctx, "cb", []byte(`{"to":"cb"}`)))
	eventually(t, 2*time.Second, func() bool { return len(db.list()) == 1 }, "cb's message on db")
	if got := db.list(); got[0] != `cb={"to":"cb"}` {
		t.Fatalf("db got %v", got)
	}

	n, err := rc.SendToUser(ctx, "u1", []byte(`"hi u1"`))
	must(t, err)
	if n != 3 {
		t.Fatalf("SendToUser addressed %d connections, want 3", n)
	}
	eventually(t, 2*time.Second, func() bool { return len(da.list()) == 1 && len(db.list()) == 3 }, "u1's messages")
	if got, want := da.list(), []string{`ca="hi u1"`}; !slices.Equal(got, want) {
		t.Fatalf("da got %v, want %v", got, want)
	}
	if got, want := db.list(), []string{`cb2="hi u1"`, `cb="hi u1"`, `cb={"to":"cb"}`}; !slices.Equal(got, want) {
		t.Fatalf("db got %v, want %v", got, want)
	}
	// An end marker to the sender's own connection: published after the
	// sends above, it reaches dc (and the watcher) after anything they
	// published there, so dc must have it alone and the watcher last.
	must(t, rc.SendToConn(ctx, "cc", []byte(`"marker"`)))
	eventually(t, 2*time.Second, func() bool { return len(dc.list()) > 0 }, "the marker on dc")
	if got, want := dc.list(), []string{`cc="marker"`}; !slices.Equal(got, want) {
		t.Fatalf("the sender's own instance received %v, want only the marker %v", got, want)
	}
	eventually(t, 2*time.Second, func() bool { return slices.Contains(watched(), "ws#inst:dc") }, "the marker's publication watched")
	// One publication to db for the conn, one per owning instance for the
	// user, then the marker's.
	got := watched()
	if len(got) == 0 || got[len(got)-1] != "ws#inst:dc" {
		t.Fatalf("addressed sends published on %v, the marker's (ws#inst:dc) not last", got)
	}
	got = got[:len(got)-1]
	slices.Sort(got)
	if want := []string{"ws#inst:da", "ws#inst:db", "ws#inst:db"}; !slices.Equal(got, want) {
		t.Fatalf("addressed sends published on %v before the marker, want %v", got, want)
	}

	if err := rc.SendToConn(ctx, "nobody", []byte(`1`)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("send to an unknown conn: %v", err)
	}
	if _, err := rc.SendToUser(ctx, "nobody", []byte(`1`)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("send to an unknown user: %v", err)
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, conns := range [][]string{{"a"}, {"", "x:y|z", "12345678901"}, {"Ω"}} {
		for _, data := range []string{``, `{"a":1}`, "3:abc\n"} {
			env := string(appendDirect(nil, conns, []byte(data)))
			var got []string
			err := parseDirect(env, func(c string, d []byte) {
				if string(d) != data {
					t.Fatalf("data %q, want %q", d, data)
				}
				got = append(got, c)
			})
			must(t, err)
			if !slices.Equal(got, conns) {
				t.Fatalf("conns %q, want %q", got, conns)
			}
		}
	}
	for _, bad := range []string{"", "D", "D0\n", "D1\n", "D1\n5:ab", "D2\n1:a", "Dx\n1:a", "P1", "D1\n:a", "D99999999999\n"} {
		called := false
		if err := parseDirect(bad, func(string, []byte) { called = true }); err == nil || called {
			t.Fatalf("%q: err %v, called %v", bad, err, called)
		}
	}
}

func numpat(t testing.TB, c rueidis.Client) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n, err := c.Do(ctx, c.B().PubsubNumpat().Build()).AsInt64()
	must(t, err)
	return n
}
