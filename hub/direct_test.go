package hub

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRegistrar records Opened and Closed calls, with the ids they name.
type fakeRegistrar struct {
	mu     sync.Mutex
	calls  []string
	prefix string // "<instance>."
	local  LocalConns
}

func (p *fakeRegistrar) Attach(l LocalConns) { p.local = l }

func (p *fakeRegistrar) Opened(n uint64, user string, _ int64) {
	p.mu.Lock()
	p.calls = append(p.calls, "add "+p.prefix+strconv.FormatUint(n, 10)+" "+user)
	p.mu.Unlock()
}

func (p *fakeRegistrar) Closed(n uint64, user string) {
	p.mu.Lock()
	p.calls = append(p.calls, "remove "+p.prefix+strconv.FormatUint(n, 10))
	p.mu.Unlock()
}

func (p *fakeRegistrar) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.calls
	p.calls = nil
	return c
}

func TestInfoAndRegistrar(t *testing.T) {
	pres := &fakeRegistrar{prefix: "gw-1."}
	h, loops := testHub(t, newFakeBroker(), 2, Config{InstanceID: "gw-1", Registrar: pres})
	a := &fakeConn{id: 7, loop: 1}
	h.OnOpen(a)
	if got := pres.take(); len(got) != 1 || got[0] != "add gw-1.7 " {
		t.Fatalf("presence after open: %q", got)
	}
	h.OnText(a, []byte(`{"op":"info","id":3}`))
	h.OnText(a, []byte(`{"op":"info"}`)) // no id: silent success
	runAll(loops)
	if got := a.take(); len(got) != 1 || got[0] != `{"op":"ok","id":3,"conn":"gw-1.7","instance":"gw-1"}` {
		t.Fatalf("info replies: %q", got)
	}
	h.OnClose(a)
	if got := pres.take(); len(got) != 1 || got[0] != "remove gw-1.7" {
		t.Fatalf("presence after close: %q", got)
	}

	// Without a Registrar, info still names the connection.
	h2, loops2 := testHub(t, newFakeBroker(), 1, Config{})
	b := &fakeConn{id: 9}
	h2.OnOpen(b)
	h2.OnText(b, []byte(`{"op":"info","id":1}`))
	runAll(loops2)
	if got := b.take(); len(got) != 1 || got[0] != `{"op":"ok","id":1,"conn":"local.9","instance":"local"}` {
		t.Fatalf("info without presence: %q", got)
	}
}

func TestSendDirect(t *testing.T) {
	h, loops := testHub(t, newFakeBroker(), 2, Config{InstanceID: "i.x", Registrar: &fakeRegistrar{}})
	a := &fakeConn{id: 1, loop: 0}
	b := &fakeConn{id: 2, loop: 1}
	h.OnOpen(a)
	h.OnOpen(b)

	if !h.SendDirect("i.x.2", []byte(`{"k":[1,2]}`)) {
		t.Fatal("SendDirect to an open local connection reported false")
	}
	runAll(loops)
	if got := b.take(); len(got) != 1 || got[0] != `{"op":"direct","data":{"k":[1,2]}}` {
		t.Fatalf("addressee got %q", got)
	}
	if got := a.take(); len(got) != 0 {
		t.Fatalf("other connection got %q", got)
	}

	for _, id := range []string{"i.x.3", "i.x.", "i.x.2x", "other.2", "2", ""} {
		if h.SendDirect(id, []byte(`1`)) {
			t.Errorf("SendDirect(%q) reported true", id)
		}
	}
	// Queued, then the connection closes before its loop runs: dropped.
	if !h.SendDirect("i.x.1", []byte(`"late"`)) {
		t.Fatal("SendDirect to a:false")
	}
	h.OnClose(a)
	runAll(loops)
	if got := a.take(); len(got) != 0 {
		t.Fatalf("closed connection got %q", got)
	}
	if h.SendDirect("i.x.1", []byte(`1`)) {
		t.Fatal("SendDirect after close reported true")
	}

	// Without a Registrar nothing is addressable.
	h2, _ := testHub(t, newFakeBroker(), 1, Config{InstanceID: "i"})
	c := &fakeConn{id: 1}
	h2.OnOpen(c)
	if h2.SendDirect("i.1", []byte(`1`)) {
		t.Fatal("SendDirect without a Registrar reported true")
	}
}

// fakeDirectory answers from fixed data; err overrides every answer.
type fakeDirectory struct {
	mu    sync.Mutex
	err   error
	sends []string
}

func (d *fakeDirectory) SendToConn(ctx context.Context, id string, data []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return d.err
	}
	if id != "a.1" {
		return ErrNotFound
	}
	d.sends = append(d.sends, "conn "+id+" "+string(data))
	return nil
}

func (d *fakeDirectory) SendToUser(ctx context.Context, user string, data []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return 0, d.err
	}
	if user != "bob" {
		return 0, ErrNotFound
	}
	d.sends = append(d.sends, "user "+user+" "+string(data))
	return 2, nil
}

func (d *fakeDirectory) Lookup(ctx context.Context, id string) (ConnInfo, error) {
	if d.err != nil {
		return ConnInfo{}, d.err
	}
	if id != "a.1" {
		return ConnInfo{}, ErrNotFound
	}
	return ConnInfo{ID: id, Instance: "a", User: "bob", ConnectedAt: time.UnixMilli(1700000000000).UTC()}, nil
}

func (d *fakeDirectory) Instances(ctx context.Context) ([]InstanceInfo, error) {
	if d.err != nil {
		return nil, d.err
	}
	return []InstanceInfo{
		{ID: "b", Conns: 0, Heartbeat: time.UnixMilli(1700000000000).UTC()},
		{ID: "a", Conns: 3, Heartbeat: time.UnixMilli(1700000000000).UTC()},
	}, nil
}

func TestDirectoryAPI(t *testing.T) {
	dir := &fakeDirectory{}
	h, _ := testHub(t, newFakeBroker(), 1, Config{MaxPublish: 16, Directory: dir})
	srv := httptest.NewServer(AdminHandler(h, nil, nil))
	defer srv.Close()
	do := apiClient(t, srv)

	for _, tc := range []struct {
		method, path, body string
		code               int
		says               string
	}{
		{"POST", "/api/send", `{"conn":"a.1","data":{"x":1}}`, 200, `{"ok":true,"sent":1}`},
		{"POST", "/api/send", `{"user":"bob","data":"hi"}`, 200, `{"ok":true,"sent":2}`},
		{"POST", "/api/send", `{"conn":"a.2","data":1}`, 404, "no live instance holds this connection"},
		{"POST", "/api/send", `{"user":"eve","data":1}`, 404, "connection of this user"},
		{"POST", "/api/send", `{"conn":"a.1","user":"bob","data":1}`, 400, "exactly one"},
		{"POST", "/api/send", `{"data":1}`, 400, "exactly one"},
		{"POST", "/api/send", `{"conn":"","data":1}`, 400, "exactly one"},
		{"POST", "/api/send", `{"conn":5,"data":1}`, 400, "exactly one"},
		{"POST", "/api/send", `{"conn":"a.1"}`, 400, "missing data"},
		{"POST", "/api/send", `{"conn":"a.1","data":[1,}`, 400, "malformed JSON"},
		{"POST", "/api/send", `{"conn":"a.1","data":"01234567890123456789"}`, 413, "publish limit"},
		{"GET", "/api/send", ``, 405, "use POST"},
		{"GET", "/api/connections/a.1", ``, 200, `{"id":"a.1","instance":"a","user":"bob","connected_at":"2023-11-14T22:13:20Z"}`},
		{"GET", "/api/connections/a.9", ``, 404, "no live instance"},
		{"POST", "/api/connections/a.1", ``, 405, ""},
		{"GET", "/api/instances", ``, 200, `{"instances":[{"id":"a","conns":3,"heartbeat":"2023-11-14T22:13:20Z"},{"id":"b","conns":0,"heartbeat":"2023-11-14T22:13:20Z"}]}`},
	} {
		code, body := do(tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.says) {
			t.Errorf("%s %s %s: %d %s, want %d containing %q", tc.method, tc.path, tc.body, code, body, tc.code, tc.says)
		}
	}
	if got := dir.sends; len(got) != 2 || got[0] != `conn a.1 {"x":1}` || got[1] != `user bob "hi"` {
		t.Fatalf("directory got %q", got)
	}

	dir.err = errors.New("redis: connection refused")
	for _, p := range []string{"/api/connections/a.1", "/api/instances"} {
		if code, body := do("GET", p, ""); code != 503 || !strings.Contains(body, "connection refused") {
			t.Errorf("GET %s with the directory down: %d %s", p, code, body)
		}
	}
	if code, _ := do("POST", "/api/send", `{"conn":"a.1","data":1}`); code != 503 {
		t.Errorf("send with the directory down: %d", code)
	}

	// No directory: 501 on every directory route.
	h2, _ := testHub(t, newFakeBroker(), 1, Config{})
	srv2 := httptest.NewServer(AdminHandler(h2, nil, nil))
	defer srv2.Close()
	for _, r := range [][2]string{{"POST", "/api/send"}, {"GET", "/api/connections/x"}, {"GET", "/api/instances"}} {
		req, _ := http.NewRequest(r[0], srv2.URL+r[1], strings.NewReader(`{"conn":"x","data":1}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 501 {
			t.Errorf("%s %s without a directory: %d", r[0], r[1], resp.StatusCode)
		}
	}
}

// connSet against a map, with the ids of one stripe (16 apart), through
// growth and shrinking.
func TestConnSet(t *testing.T) {
	var set connSet
	ref := map[uint64]*connData{}
	rng := rand.New(rand.NewPCG(3, 4))
	check := func(when string) {
		t.Helper()
		if set.n != len(ref) {
			t.Fatalf("%s: %d entries, want %d", when, set.n, len(ref))
		}
		for id, cs := range ref {
			if got := set.get(id); got != cs {
				t.Fatalf("%s: get(%d) = %p, want %p", when, id, got, cs)
			}
		}
		if n := len(set.slots) + 1; n&(n-1) != 0 {
			t.Fatalf("%s: %d slots, want 2^k-1", when, len(set.slots))
		}
		if len(set.slots) > minConnSlots && 8*set.n < len(set.slots) || 4*set.n > 3*len(set.slots) {
			t.Fatalf("%s: %d slots for %d entries", when, len(set.slots), set.n)
		}
	}
	if set.get(5) != nil {
		t.Fatal("empty set found an id")
	}
	set.del(5)
	next := uint64(3)
	add := func() {
		cs := &connData{conn: &fakeConn{id: next}}
		set.put(cs)
		ref[next] = cs
		next += 16 * uint64(1+rng.IntN(3))
	}
	del := func() {
		for id := range ref {
			set.del(id)
			delete(ref, id)
			if set.get(id) != nil {
				t.Fatalf("get(%d) after del", id)
			}
			return
		}
	}
	for range 3000 {
		add()
	}
	check("after 3000 adds")
	for range 10000 {
		if rng.IntN(2) == 0 {
			add()
		} else {
			del()
		}
	}
	check("after churn")
	for id := range ref { // a missing id changes nothing
		set.del(id + 1)
		break
	}
	check("after deleting a missing id")
	for len(ref) > 0 {
		del()
	}
	check("empty")
	if len(set.slots) != minConnSlots {
		t.Fatalf("empty set kept %d slots", len(set.slots))
	}
}
