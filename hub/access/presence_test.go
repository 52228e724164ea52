package access

import (
	"testing"
	"time"
)

func TestParseAudience(t *testing.T) {
	for _, s := range Audiences {
		a, err := ParseAudience(s)
		if err != nil || a.String() != s {
			t.Errorf("ParseAudience(%q) = %v, %v", s, a, err)
		}
	}
	if _, err := ParseAudience("token"); err == nil {
		t.Error("presence_for: token accepted")
	}
	if a, _ := ParseAudience("subscribers"); a != 0 {
		t.Error("subscribers is not the zero Audience: a Namespace left at zero would not get the default")
	}
}

func TestPresencePermissionMatrix(t *testing.T) {
	plain := &Identity{User: "alice"}
	other := &Identity{User: "alice", Grants: &Grants{Patterns: []string{"elsewhere:*"}}}
	ids := []*Identity{nil, plain, other} // anonymous, authenticated, token without the channel
	want := map[Audience][2][3]Verdict{   // [not subscribed, subscribed]
		QuerySubscribers:   {{NotSubscribed, NotSubscribed, NotListed}, {Allowed, Allowed, NotListed}},
		QueryAuthenticated: {{NeedsToken, Allowed, NotListed}, {NeedsToken, Allowed, NotListed}},
		QueryAnyone:        {{Allowed, Allowed, NotListed}, {Allowed, Allowed, NotListed}},
		QueryNobody:        {{ClientsForbidden, ClientsForbidden, NotListed}, {ClientsForbidden, ClientsForbidden, NotListed}},
	}
	for a, w := range want {
		p, err := NewPolicy(Namespace{}, []Namespace{{Name: "ns", Presence: Presence{On: true, For: a}}}, false)
		if err != nil {
			t.Fatal(err)
		}
		for s, subscribed := range []bool{false, true} {
			for i, id := range ids {
				if got := p.CanQueryPresence(id, "ns:1", subscribed); got != w[s][i] {
					t.Errorf("%v, id %d, subscribed=%v: %v, want %v", a, i, subscribed, got, w[s][i])
				}
			}
		}
		if got := p.CanQueryPresence(plain, "other:1", true); got != UnknownNamespace {
			t.Errorf("%v: unknown namespace: %v", a, got)
		}
	}
	// A user-limited channel's members are its users' business, even for anyone.
	p, _ := NewPolicy(Namespace{}, []Namespace{{Name: "dm", Presence: Presence{On: true, For: QueryAnyone}}}, false)
	for _, c := range []struct {
		id   *Identity
		want Verdict
	}{{nil, NeedsToken}, {&Identity{User: "carol"}, NotUser}, {&Identity{User: "bob"}, Allowed}} {
		if got := p.CanQueryPresence(c.id, "dm:#alice,bob", false); got != c.want {
			t.Errorf("dm as %v: %v, want %v", c.id, got, c.want)
		}
	}
	if !p.HasPresence() {
		t.Error("HasPresence false with a presence namespace")
	}
	if q, _ := NewPolicy(Namespace{}, []Namespace{{Name: "x"}}, true); q.HasPresence() {
		t.Error("HasPresence true without one")
	}
}

func TestPresenceOptionsChecked(t *testing.T) {
	for _, o := range []Presence{
		{JoinLeave: true},
		{On: true, Linger: time.Second},
		{On: true, JoinLeave: true, Linger: -1},
		{On: true, JoinLeave: true, Linger: 2 * MaxLinger},
		{On: true, For: numAudiences},
	} {
		if _, err := NewPolicy(Namespace{}, []Namespace{{Name: "ns", Presence: o}}, true); err == nil {
			t.Errorf("%+v accepted", o)
		}
		if _, err := NewPolicy(Namespace{Presence: o}, nil, true); err == nil {
			t.Errorf("default %+v accepted", o)
		}
	}
}
