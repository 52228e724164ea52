package presence

import (
	"fmt"
	"slices"
	"testing"
)

func TestSetCounts(t *testing.T) {
	s := NewSet()
	steps := []struct {
		join      *Member
		leave     string
		want      Stats
		wantFirst bool // Join/Leave's answer
	}{
		{join: &Member{Conn: "a.1", User: "alice"}, want: Stats{1, 1}, wantFirst: true},
		{join: &Member{Conn: "a.2", User: "alice"}, want: Stats{2, 1}, wantFirst: true},
		{join: &Member{Conn: "b.1", User: "bob"}, want: Stats{3, 2}, wantFirst: true},
		{join: &Member{Conn: "b.2"}, want: Stats{4, 2}, wantFirst: true}, // anonymous: a connection, no user
		{join: &Member{Conn: "a.2", User: "alice", Info: []byte(`{"n":2}`)}, want: Stats{4, 2}},
		{join: &Member{Conn: "b.2", User: "carol"}, want: Stats{4, 3}}, // the same connection as another user
		{leave: "a.1", want: Stats{3, 3}, wantFirst: true},
		{leave: "a.1", want: Stats{3, 3}},
		{leave: "a.2", want: Stats{2, 2}, wantFirst: true},
		{leave: "b.2", want: Stats{1, 1}, wantFirst: true},
		{leave: "b.1", want: Stats{0, 0}, wantFirst: true},
	}
	for i, st := range steps {
		var got bool
		if st.join != nil {
			got = s.Join(*st.join)
		} else {
			got = s.Leave(st.leave)
		}
		if got != st.wantFirst || s.Stats() != st.want || s.Len() != st.want.Conns {
			t.Fatalf("step %d: answered %v, stats %+v; want %v, %+v", i, got, s.Stats(), st.wantFirst, st.want)
		}
	}
	if len(s.users) != 0 || len(s.members) != 0 {
		t.Fatalf("left over: %v %v", s.users, s.members)
	}
}

func TestMemoryStore(t *testing.T) {
	s := NewMemoryStore()
	for i := range 5 {
		s.Join("room", Member{Conn: fmt.Sprintf("x.%d", i), User: fmt.Sprintf("u%d", i%2)})
	}
	s.Join("other", Member{Conn: "x.9", User: "z"})
	s.Leave("room", "x.0")
	var stats Stats
	s.Stats("room", func(st Stats, err error) { stats = st })
	if stats != (Stats{4, 2}) {
		t.Fatalf("stats %+v", stats)
	}
	var conns []string
	s.Members("room", func(ms []Member, err error) {
		for _, m := range ms {
			conns = append(conns, m.Conn)
		}
	})
	slices.Sort(conns)
	if fmt.Sprint(conns) != "[x.1 x.2 x.3 x.4]" {
		t.Fatalf("members %v", conns)
	}
	for i := 1; i < 5; i++ {
		s.Leave("room", fmt.Sprintf("x.%d", i))
	}
	if st := s.stripe("room"); st.m["room"] != nil {
		t.Fatal("an empty channel is kept")
	}
	called := false
	s.Members("room", func(ms []Member, err error) { called = len(ms) == 0 && err == nil })
	if !called {
		t.Fatal("empty channel: no empty answer")
	}
}
