package hub

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wshub/wshub/hub/access"
	"github.com/wshub/wshub/hub/presence"
)

// presenceNamespaces: room tracks and announces (linger 2s), the others
// only track, each with another audience for queries; plain has none.
var presenceNamespaces = []access.Namespace{
	{Name: "room", Presence: access.Presence{On: true, JoinLeave: true, Linger: 2 * time.Second}},
	{Name: "open", Presence: access.Presence{On: true, For: access.QueryAnyone}},
	{Name: "auth", Presence: access.Presence{On: true, For: access.QueryAuthenticated}},
	{Name: "closed", Presence: access.Presence{On: true, For: access.QueryNobody}},
	{Name: "plain"},
}

type presenceFixture struct {
	*protoFixture
	store  PresenceStore
	clock  atomic.Int64 // unix ns the hub's linger reads
	nextID uint64
}

func newPresenceFixture(t *testing.T, store PresenceStore, cfg Config) *presenceFixture {
	pol, err := access.NewPolicy(access.Namespace{}, presenceNamespaces, true)
	if err != nil {
		t.Fatal(err)
	}
	if store == nil {
		store = presence.NewMemoryStore()
	}
	cfg.Policy, cfg.Presence = pol, store
	cfg.Auth = AuthConfig{Verifier: hsVerifier(t), AllowAnonymous: true}
	f := &presenceFixture{protoFixture: newProto(t, cfg), store: store, nextID: 100}
	f.clock.Store(time.Unix(1000, 0).UnixNano())
	f.h.joinLeave.now = func() time.Time { return time.Unix(0, f.clock.Load()) }
	return f
}

// connect opens a connection on loop 0 for user ("" anonymous) whose token
// carries info (nil: none).
func (f *presenceFixture) connect(user string, info map[string]any) *fakeConn {
	f.t.Helper()
	f.nextID++
	c := &fakeConn{id: f.nextID}
	if user != "" {
		claims := jwt.MapClaims{"sub": user}
		if info != nil {
			claims["info"] = info
		}
		if code := f.h.OnUpgrade(c, "token="+hsToken(f.t, claims), ""); code != 0 {
			f.t.Fatalf("upgrade %s: %d", user, code)
		}
	}
	f.h.OnOpen(c)
	return c
}

// advance moves the linger's clock and fires its timer, as the real one would.
func (f *presenceFixture) advance(d time.Duration) {
	f.clock.Add(int64(d))
	f.h.joinLeave.fire()
	runAll(f.loops)
}

// ask sends a query and returns the one frame it got, decoded.
func (f *presenceFixture) ask(c *fakeConn, msg string) map[string]any {
	f.t.Helper()
	f.send(c, msg)
	got := c.takeJSON(f.t)
	if len(got) != 1 {
		f.t.Fatalf("%s: %d frames %v", msg, len(got), got)
	}
	return got[0]
}

// members answers a presence query's members as "user/conn/info" sorted.
func members(t *testing.T, ok map[string]any) []string {
	t.Helper()
	list, _ := ok["members"].([]any)
	if ok["op"] != "ok" || list == nil {
		t.Fatalf("not a members answer: %v", ok)
	}
	var out []string
	for _, m := range list {
		m := m.(map[string]any)
		s := fmt.Sprintf("%v/%v", m["user"], m["conn"])
		if info, ok := m["info"]; ok {
			b, _ := json.Marshal(info)
			s += "/" + string(b)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func TestPresenceMembersAndStats(t *testing.T) {
	f := newPresenceFixture(t, nil, Config{})
	a1 := f.connect("alice", map[string]any{"name": "Alice"})
	a2 := f.connect("alice", map[string]any{"name": "Alice"})
	b := f.connect("bob", nil)
	anon := f.connect("", nil)
	for _, c := range []*fakeConn{a1, a2, b, anon} {
		f.send(c, `{"op":"subscribe","channel":"open:1","id":1}`)
		f.expect(c, `{"op":"ok","id":1}`)
	}
	got := members(t, f.ask(anon, `{"op":"presence","channel":"open:1","id":2}`))
	want := []string{`/local.104`, `alice/local.101/{"name":"Alice"}`, `alice/local.102/{"name":"Alice"}`, `bob/local.103`}
	if !slices.Equal(got, want) {
		t.Fatalf("members %q, want %q", got, want)
	}
	stats := func(want string) {
		t.Helper()
		f.send(anon, `{"op":"presence_stats","channel":"open:1","id":3}`)
		f.expect(anon, `{"op":"ok","id":3,`+want+`}`)
	}
	stats(`"conns":4,"users":2`)
	f.send(a1, `{"op":"unsubscribe","channel":"open:1","id":4}`)
	f.expect(a1, `{"op":"ok","id":4}`)
	stats(`"conns":3,"users":2`)
	f.h.OnClose(b)
	stats(`"conns":2,"users":1`)
	f.h.OnClose(a2)
	f.h.OnClose(anon)
	f.store.Stats("open:1", func(st presence.Stats, _ error) {
		if st != (presence.Stats{}) {
			t.Errorf("after every close: %+v", st)
		}
	})
	if n := len(f.h.loops[0].infos); n != 1 { // a1 still open
		t.Fatalf("infos kept: %d, want 1", n)
	}
	// A pending subscribe joins once the broker confirms it, not before.
	f.b.hold = true
	c := f.connect("carol", nil)
	f.send(c, `{"op":"subscribe","channel":"open:2","id":5}`)
	f.send(a1, `{"op":"presence_stats","channel":"open:2","id":6}`)
	f.expect(a1, `{"op":"ok","id":6,"conns":0,"users":0}`)
	f.b.fire(t, "open:2", nil)
	runAll(f.loops)
	f.expect(c, `{"op":"ok","id":5}`)
	f.send(a1, `{"op":"presence_stats","channel":"open:2","id":7}`)
	f.expect(a1, `{"op":"ok","id":7,"conns":1,"users":1}`)
}

func TestPresencePermissions(t *testing.T) {
	f := newPresenceFixture(t, nil, Config{})
	alice, anon := f.connect("alice", nil), f.connect("", nil)
	for _, tc := range []struct {
		c    *fakeConn
		msg  string
		want string // the reply's code, or "ok"
	}{
		{alice, `{"op":"presence","channel":"room:1","id":1}`, "403"}, // subscribers only, not subscribed
		{alice, `{"op":"presence_stats","channel":"room:1","id":1}`, "403"},
		{anon, `{"op":"presence","channel":"auth:1","id":1}`, "403"},
		{alice, `{"op":"presence","channel":"auth:1","id":1}`, "ok"},
		{alice, `{"op":"presence","channel":"closed:1","id":1}`, "403"},
		{alice, `{"op":"presence","channel":"plain:1","id":1}`, "404"},
		{alice, `{"op":"presence","channel":"nons","id":1}`, "404"}, // the default namespace has none
		{alice, `{"op":"presence","channel":"bad channel","id":1}`, "422"},
		{alice, `{"op":"presence","id":1}`, "400"},
	} {
		got := f.ask(tc.c, tc.msg)
		if code := fmt.Sprint(got["code"]); got["op"] != tc.want && code != tc.want {
			t.Errorf("%s: %v, want %s", tc.msg, got, tc.want)
		}
	}
	f.send(alice, `{"op":"subscribe","channel":"room:1","id":2}`)
	alice.take()
	if got := members(t, f.ask(alice, `{"op":"presence","channel":"room:1","id":3}`)); len(got) != 1 {
		t.Fatalf("subscriber's query: %v", got)
	}
	// Success without an id is silent; an error is not.
	f.send(alice, `{"op":"presence","channel":"room:1"}`)
	f.send(alice, `{"op":"presence","channel":"plain:1"}`)
	f.expect(alice, `{"op":"error","code":404,"message":"this channel has no presence: its namespace does not track members"}`)
}

// heldStore is a PresenceStore whose Members and Stats answer when the
// test says, from another goroutine.
type heldStore struct {
	*presence.MemoryStore
	mu   sync.Mutex
	held []func(error)
}

func (s *heldStore) Members(ch string, done func([]presence.Member, error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = append(s.held, func(err error) { s.MemoryStore.Members(ch, func(ms []presence.Member, _ error) { done(ms, err) }) })
}

func (s *heldStore) Stats(ch string, done func(presence.Stats, error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = append(s.held, func(err error) { s.MemoryStore.Stats(ch, func(st presence.Stats, _ error) { done(st, err) }) })
}

// answer completes the held calls on another goroutine, with err.
func (s *heldStore) answer(err error) {
	s.mu.Lock()
	held := s.held
	s.held = nil
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, fn := range held {
		wg.Go(func() { fn(err) })
	}
	wg.Wait()
}

func TestPresenceAnswersAsync(t *testing.T) {
	store := &heldStore{MemoryStore: presence.NewMemoryStore()}
	f := newPresenceFixture(t, store, Config{})
	a, b := f.connect("alice", nil), f.connect("bob", nil)
	f.send(a, `{"op":"subscribe","channel":"open:1","id":1}`)
	f.send(a, `{"op":"presence_stats","channel":"open:1","id":2}`)
	f.expect(a, `{"op":"ok","id":1}`) // the answer is still out
	store.answer(nil)
	runAll(f.loops)
	f.expect(a, `{"op":"ok","id":2,"conns":1,"users":1}`)

	// Store down: 503, and the connection stays usable.
	f.send(a, `{"op":"presence","channel":"open:1","id":3}`)
	store.answer(ErrUnavailable)
	runAll(f.loops)
	f.expect(a, `{"op":"error","id":3,"code":503,"message":"presence store unavailable, retry later"}`)

	// At most maxPresenceQueries out per connection; one more gets 429.
	for i := range maxPresenceQueries + 1 {
		f.send(b, fmt.Sprintf(`{"op":"presence_stats","channel":"open:1","id":%d}`, 10+i))
	}
	if got := b.takeJSON(t); len(got) != 1 || got[0]["code"] != 429.0 || got[0]["id"] != float64(10+maxPresenceQueries) {
		t.Fatalf("query over the limit: %v", got)
	}
	// A connection closed before the answer gets nothing, and the store's
	// late answer is harmless.
	f.h.OnClose(b)
	store.answer(nil)
	runAll(f.loops)
	if got := b.take(); len(got) != 0 {
		t.Fatalf("closed connection got %q", got)
	}
}

func TestPresenceAnswerTruncated(t *testing.T) {
	f := newPresenceFixture(t, nil, Config{MaxPresenceAnswer: 300})
	var last *fakeConn
	for i := range 20 {
		last = f.connect(fmt.Sprintf("user%02d", i), map[string]any{"i": i})
		f.send(last, `{"op":"subscribe","channel":"open:1"}`)
	}
	f.send(last, `{"op":"presence","channel":"open:1","id":1}`)
	raw := last.take()
	if len(raw) != 1 || len(raw[0]) > 300 || !json.Valid([]byte(raw[0])) || !strings.HasSuffix(raw[0], `],"truncated":true}`) {
		t.Fatalf("answer %q (%d bytes): want valid JSON within 300 bytes, truncated", raw, len(raw[0]))
	}
	var ok struct{ Members []presence.Member }
	json.Unmarshal([]byte(raw[0]), &ok)
	if n := len(ok.Members); n == 0 || n >= 20 {
		t.Fatalf("%d members in the truncated answer", n)
	}
	// The member cap: the same cut by count.
	ms := make([]presence.Member, 5)
	if b, cut := appendMembers(nil, ms, 3, 0); !cut || strings.Count(string(b), "conn") != 3 {
		t.Fatalf("count cap: %s %v", b, cut)
	}
	if b, cut := appendMembers(nil, ms, 5, 0); cut || strings.Count(string(b), "conn") != 5 {
		t.Fatalf("no cap reached: %s %v", b, cut)
	}
}

func TestPresenceAdmin(t *testing.T) {
	f := newPresenceFixture(t, nil, Config{})
	a := f.connect("alice", map[string]any{"name": "Alice"})
	f.send(a, `{"op":"subscribe","channel":"open:x/y","id":1}`)
	srv := httptest.NewServer(AdminHandler(f.h, nil, nil))
	defer srv.Close()
	do := apiClient(t, srv)
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/api/presence/open:x%2Fy", `200 {"members":[{"conn":"local.101","user":"alice","info":{"name":"Alice"}}]}`},
		{"GET", "/api/presence/open:x%2Fy/stats", `200 {"conns":1,"users":1}`},
		{"GET", "/api/presence/open:empty/stats", `200 {"conns":0,"users":0}`},
		{"GET", "/api/presence/open:empty", `200 {"members":[]}`},
		{"GET", "/api/presence/plain:1", `404 {"error":{"code":404,"message":"this channel has no presence: its namespace does not track members"}}`},
		{"GET", "/api/presence/plain:1/stats", `404 {"error":{"code":404,"message":"this channel has no presence: its namespace does not track members"}}`},
		{"GET", "/api/presence/bad%20name", `422 {"error":{"code":422,"message":"channel name has invalid character ' ' at byte 3"}}`},
		{"POST", "/api/presence/open:1", `405 method not allowed`},
	} {
		code, body := do(tc.method, tc.path, "")
		if got := fmt.Sprint(code, " ", body); got != tc.want {
			t.Errorf("%s %s: %s\nwant %s", tc.method, tc.path, got, tc.want)
		}
	}
	// A store that does not answer in time: 503.
	g := newPresenceFixture(t, &heldStore{MemoryStore: presence.NewMemoryStore()}, Config{PublishTimeout: 10 * time.Millisecond})
	srv2 := httptest.NewServer(AdminHandler(g.h, nil, nil))
	defer srv2.Close()
	if code, body := apiClient(t, srv2)("GET", "/api/presence/open:1/stats", ""); code != 503 {
		t.Fatalf("silent store: %d %s", code, body)
	}
}
