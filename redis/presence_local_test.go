package redis

import (
	"slices"
	"testing"
)

// A chunk's change names what Redis must be told: members set or deleted,
// users that appeared or vanished locally (only those touch the counts).
func TestPresChanApply(t *testing.T) {
	type op struct {
		conn string
		presOp
	}
	j := func(conn, user, info string) op {
		o := op{conn: conn, presOp: presOp{user: user}}
		if info != "" {
			o.info = []byte(info)
		}
		return o
	}
	l := func(conn string) op { return op{conn: conn, presOp: presOp{leave: true}} }
	cases := []struct {
		name          string
		before, chunk []op
		set, del      []string
		in, out       []string
		users         map[string]int
	}{
		{name: "first members", chunk: []op{j("c1", "u", ""), j("c2", "u", ""), j("c3", "", "")},
			set: []string{"c1", "c2", "c3"}, in: []string{"u"}, users: map[string]int{"u": 2}},
		{name: "second member of a user", before: []op{j("c1", "u", "")}, chunk: []op{j("c2", "u", "")},
			set: []string{"c2"}, users: map[string]int{"u": 2}},
		{name: "leave of a non-member", before: []op{j("c1", "u", "")}, chunk: []op{l("c9")},
			users: map[string]int{"u": 1}},
		{name: "same join again", before: []op{j("c1", "u", `{"a":1}`)}, chunk: []op{j("c1", "u", `{"a":1}`)},
			users: map[string]int{"u": 1}},
		{name: "new info", before: []op{j("c1", "u", `{"a":1}`)}, chunk: []op{j("c1", "u", `{"a":2}`)},
			set: []string{"c1"}, users: map[string]int{"u": 1}},
		{name: "user changes", before: []op{j("c1", "u", "")}, chunk: []op{j("c1", "v", "")},
			set: []string{"c1"}, in: []string{"v"}, out: []string{"u"}, users: map[string]int{"v": 1}},
		{name: "last member leaves", before: []op{j("c1", "u", ""), j("c2", "w", "")}, chunk: []op{l("c1")},
			del: []string{"c1"}, out: []string{"u"}, users: map[string]int{"w": 1}},
		{name: "user leaves and comes back in the chunk", before: []op{j("c1", "u", "")}, chunk: []op{l("c1"), j("c2", "u", "")},
			set: []string{"c2"}, del: []string{"c1"}, users: map[string]int{"u": 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newPresLocal()
			c := l.get("i", "ch", true)
			ch := presChange{delta: make(map[string]int)}
			for _, o := range tc.before {
				c.apply(o.conn, o.presOp, &ch)
			}
			ch.reset()
			for _, o := range tc.chunk {
				c.apply(o.conn, o.presOp, &ch)
			}
			ch.settle()
			for _, s := range [][]string{ch.set, ch.del, ch.in, ch.out} {
				slices.Sort(s)
			}
			if !slices.Equal(ch.set, tc.set) || !slices.Equal(ch.del, tc.del) || !slices.Equal(ch.in, tc.in) || !slices.Equal(ch.out, tc.out) {
				t.Fatalf("set %v del %v in %v out %v; want %v %v %v %v", ch.set, ch.del, ch.in, ch.out, tc.set, tc.del, tc.in, tc.out)
			}
			if len(c.users) != len(tc.users) {
				t.Fatalf("users %v, want %v", c.users, tc.users)
			}
			for u, n := range tc.users {
				if c.users[u] != n {
					t.Fatalf("users %v, want %v", c.users, tc.users)
				}
			}
		})
	}
}

// The refresh ring keeps every channel once as channels come and go.
func TestPresLocalRing(t *testing.T) {
	l := newPresLocal()
	a, b, c := l.get("i", "a", true), l.get("i", "b", true), l.get("i", "c", true)
	if l.get("i", "a", true) != a || l.get("i", "x", false) != nil {
		t.Fatal("get created a second record, or one without create")
	}
	l.drop(a)
	l.drop(a) // a second drop of the same record is nothing
	seen := map[string]int{}
	for range 4 {
		seen[l.step().name]++
	}
	if len(l.ring) != 2 || seen["b"] != 2 || seen["c"] != 2 || b.pos == c.pos {
		t.Fatalf("ring %d, stepped %v", len(l.ring), seen)
	}
	if newPresKeys("i", "room:1").conns != "ws:presc:i:{room:1}" || chanTag("a{b}") == "{a{b}}" {
		t.Fatal("key names")
	}
	if slotOf(newPresKeys("i", "a{b}").conns) != slotOf("a{b}") || slotOf(newPresKeys("i", "room:1").insts) != slotOf("room:1") {
		t.Fatal("presence keys not on the channel's slot")
	}
}

func TestMemberValue(t *testing.T) {
	for _, tc := range []struct{ user, info string }{{"", ""}, {"alice", `{"a":1}`}, {"a:b", ""}, {"12", "{}"}} {
		v := string(appendMember(nil, tc.user, []byte(tc.info)))
		m, ok := parseMember("c", v)
		if !ok || m.Conn != "c" || m.User != tc.user || string(m.Info) != tc.info || (tc.info == "") != (m.Info == nil) {
			t.Errorf("%q -> %q -> %+v %v", tc, v, m, ok)
		}
	}
	for _, v := range []string{"", "x", "5:ab", "-1:", "a:"} {
		if _, ok := parseMember("c", v); ok {
			t.Errorf("parseMember(%q) accepted", v)
		}
	}
}
