package access

import (
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	cases := []struct {
		pattern, channel string
		want             bool
	}{
		{"*", "room:a", true},
		{"*", "x", true},
		{"room:*", "room:a", true},
		{"room:*", "room:a:b", true},
		{"room:*", "room:", false},
		{"room:*", "room", false},
		{"room:*", "rooms:1", false},
		{"room:*", "xroom:a", false},
		{"a:b:*", "a:b:c", true},
		{"a:b:*", "a:bc", false},
		{"room:42", "room:42", true},
		{"room:42", "room:420", false},
		{"room:42", "room:4", false},
		{"room", "room:1", false},
	}
	for _, c := range cases {
		if got := Match(c.pattern, c.channel); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.channel, got, c.want)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	ok := true
	n := testing.AllocsPerRun(100, func() {
		ok = ok && Match("room:*", "room:a:b") && Match("room:42", "room:42") && Match("*", "x")
	})
	if !ok {
		t.Fatal("a match failed")
	}
	if n != 0 {
		t.Fatalf("Match allocates %v times per run", n)
	}
}

func TestValidPattern(t *testing.T) {
	long := strings.Repeat("a", MaxChannel)
	cases := []struct {
		p    string
		want bool
	}{
		{"*", true},
		{"room:*", true},
		{"a:b:*", true},
		{"room:42", true},
		{"user@example.com/x=1", true},
		{long, true},
		{long + "a", false},
		{long[:MaxChannel-2] + ":*", true}, // "prefix:" is 254 bytes
		{long[:MaxChannel-1] + ":*", false},
		{"", false},
		{":*", false},
		{"**", false},
		{"room*", false},
		{"room:**", false},
		{"*:room", false},
		{"room 1", false},
		{"röom", false},
		{"room:*:x", false},
	}
	for _, c := range cases {
		if got := ValidPattern(c.p); got != c.want {
			t.Errorf("ValidPattern(%q) = %v, want %v", c.p, got, c.want)
		}
	}
}
