package access

import (
	"fmt"
	"testing"
)

func TestParseModes(t *testing.T) {
	for _, s := range SubscribeModes {
		m, err := ParseSubscribeMode(s)
		if err != nil || m.String() != s {
			t.Errorf("ParseSubscribeMode(%q) = %v, %v", s, m, err)
		}
	}
	for _, s := range PublishModes {
		m, err := ParsePublishMode(s)
		if err != nil || m.String() != s {
			t.Errorf("ParsePublishMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseSubscribeMode("subscribers"); err == nil {
		t.Error("subscribe: subscribers accepted")
	}
	if _, err := ParsePublishMode("everyone"); err == nil {
		t.Error("publish: everyone accepted")
	}
}

func TestNewPolicyRefuses(t *testing.T) {
	for _, c := range []struct {
		name  string
		named []Namespace
		def   Namespace
	}{
		{"empty name", []Namespace{{Name: ""}}, Namespace{}},
		{"colon", []Namespace{{Name: "a:b"}}, Namespace{}},
		{"hash", []Namespace{{Name: "a#"}}, Namespace{}},
		{"too long", []Namespace{{Name: fmt.Sprintf("%065d", 0)}}, Namespace{}},
		{"twice", []Namespace{{Name: "room"}, {Name: "room"}}, Namespace{}},
		{"subscribers subscribe", []Namespace{{Name: "room", Subscribe: Subscribers}}, Namespace{}},
		{"default subscribers subscribe", nil, Namespace{Subscribe: Subscribers}},
	} {
		if _, err := NewPolicy(c.def, c.named, true); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

func TestLookup(t *testing.T) {
	p, err := NewPolicy(Namespace{Subscribe: Authenticated}, []Namespace{{Name: "room", Subscribe: Token}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if ns := p.Lookup("room:1"); ns == nil || ns.Name != "room" {
		t.Fatalf("room:1 → %+v", ns)
	}
	if ns := p.Lookup("lobby"); ns == nil || ns.Name != "" || ns.Subscribe != Authenticated {
		t.Fatalf("lobby → %+v", ns)
	}
	if ns := p.Lookup("other:1"); ns != nil {
		t.Fatalf("unknown namespace refused, got %+v", ns)
	}
	open, _ := NewPolicy(Namespace{Subscribe: Authenticated}, nil, true)
	if ns := open.Lookup("other:1"); ns == nil || ns.Name != "" {
		t.Fatalf("unknown namespace with allowUnknown → %+v", ns)
	}
	if n := testing.AllocsPerRun(100, func() { p.Lookup("room:12345") }); n != 0 {
		t.Fatalf("Lookup allocates %v times", n)
	}
}

// TestPermissionMatrix runs each subscribe and publish mode against an
// anonymous connection, an authenticated one without a channels claim, one
// whose claim lists the channel and one whose claim does not.
func TestPermissionMatrix(t *testing.T) {
	anon := (*Identity)(nil)
	plain := &Identity{User: "alice"}
	listed := &Identity{User: "alice", Grants: &Grants{Patterns: []string{"ns:*"}}}
	other := &Identity{User: "alice", Grants: &Grants{Patterns: []string{"elsewhere:*"}}}
	ids := []struct {
		name string
		id   *Identity
	}{{"anonymous", anon}, {"authenticated", plain}, {"token-listed", listed}, {"token-unlisted", other}}

	subWant := map[Mode][4]Verdict{
		Anyone:        {Allowed, Allowed, Allowed, NotListed},
		Authenticated: {NeedsToken, Allowed, Allowed, NotListed},
		Token:         {NeedsToken, NotListed, Allowed, NotListed},
		Nobody:        {ClientsForbidden, ClientsForbidden, ClientsForbidden, NotListed},
	}
	for m, want := range subWant {
		p, err := NewPolicy(Namespace{}, []Namespace{{Name: "ns", Subscribe: m}}, true)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range ids {
			if got := p.CanSubscribe(c.id, "ns:1"); got != want[i] {
				t.Errorf("subscribe %v, %s: %v (%s), want %v (%s)", m, c.name, got, Reasons[got], want[i], Reasons[want[i]])
			}
		}
	}
	pubWant := map[Mode][2][4]Verdict{ // [not subscribed, subscribed]
		Anyone:        {{Allowed, Allowed, Allowed, NotListed}, {Allowed, Allowed, Allowed, NotListed}},
		Subscribers:   {{NotSubscribed, NotSubscribed, NotSubscribed, NotListed}, {Allowed, Allowed, Allowed, NotListed}},
		Authenticated: {{NeedsToken, Allowed, Allowed, NotListed}, {NeedsToken, Allowed, Allowed, NotListed}},
		Token:         {{NeedsToken, NotListed, Allowed, NotListed}, {NeedsToken, NotListed, Allowed, NotListed}},
		Nobody:        {{ClientsForbidden, ClientsForbidden, ClientsForbidden, NotListed}, {ClientsForbidden, ClientsForbidden, ClientsForbidden, NotListed}},
	}
	for m, want := range pubWant {
		p, err := NewPolicy(Namespace{}, []Namespace{{Name: "ns", Publish: m}}, true)
		if err != nil {
			t.Fatal(err)
		}
		for s, subscribed := range []bool{false, true} {
			for i, c := range ids {
				if got := p.CanPublish(c.id, "ns:1", subscribed); got != want[s][i] {
					t.Errorf("publish %v, %s, subscribed=%v: %v, want %v", m, c.name, subscribed, got, want[s][i])
				}
			}
		}
	}
}

func TestUserLimitedChannels(t *testing.T) {
	// Whatever the namespace says (nobody here), a user-limited channel is
	// open to its users and only to them.
	p, err := NewPolicy(Namespace{}, []Namespace{{Name: "dm", Subscribe: Nobody}}, true)
	if err != nil {
		t.Fatal(err)
	}
	alice := &Identity{User: "alice"}
	carol := &Identity{User: "carol"}
	bob := &Identity{User: "bob", Grants: &Grants{Patterns: []string{"news"}}}
	for _, c := range []struct {
		id      *Identity
		channel string
		want    Verdict
	}{
		{alice, "dm:#alice,bob", Allowed},
		{alice, "dm:#bob,alice", Allowed},
		{carol, "dm:#alice,bob", NotUser},
		{nil, "dm:#alice,bob", NeedsToken},
		{alice, "dm:#alic", NotUser},
		{alice, "dm:#alice,", Allowed},
		{bob, "dm:#alice,bob", NotListed}, // the claim's ceiling still applies
		{&Identity{User: "42"}, "notifications:#42", Allowed},
		{&Identity{User: "4"}, "notifications:#42", NotUser},
	} {
		if got := p.CanSubscribe(c.id, c.channel); got != c.want {
			t.Errorf("%+v subscribing %s: %v, want %v", c.id, c.channel, got, c.want)
		}
	}
	if users, ok := UserLimited("room:1"); ok {
		t.Errorf("room:1 is not user-limited, got %q", users)
	}
	if _, ok := UserLimited("room:#"); ok {
		t.Error("room:# has no users")
	}
}

func TestUnknownNamespaceRefused(t *testing.T) {
	p, _ := NewPolicy(Namespace{Subscribe: Anyone, Publish: Anyone}, []Namespace{{Name: "room"}}, false)
	if v := p.CanSubscribe(nil, "chat:1"); v != UnknownNamespace {
		t.Fatalf("subscribe chat:1: %v", v)
	}
	if v := p.CanPublish(nil, "chat:1", true); v != UnknownNamespace {
		t.Fatalf("publish chat:1: %v", v)
	}
	if v := p.CanSubscribe(nil, "lobby"); v != Allowed {
		t.Fatalf("default namespace: %v", v)
	}
}

func BenchmarkCanSubscribe(b *testing.B) {
	p, _ := NewPolicy(Namespace{Subscribe: Authenticated}, []Namespace{{Name: "room", Subscribe: Token}, {Name: "dm"}}, true)
	id := &Identity{User: "alice", Grants: &Grants{Patterns: []string{"news", "room:*"}}}
	b.ReportAllocs()
	for b.Loop() {
		if p.CanSubscribe(id, "room:12345") != Allowed {
			b.Fatal("refused")
		}
	}
}
