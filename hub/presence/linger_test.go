package presence

import (
	"fmt"
	"testing"
	"time"
)

func TestLinger(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	names := func(hs []Held) string {
		var s []string
		for _, h := range hs {
			s = append(s, h.Channel+"/"+h.User+"/"+h.Conn)
		}
		return fmt.Sprint(s)
	}
	l := NewLinger(3)

	// A reconnect within the linger: the join cancels the leave.
	if !l.Hold("room", "alice", "a.1", at(2000)) {
		t.Fatal("leave not held")
	}
	if !l.Join("room", "alice") || l.Len() != 0 {
		t.Fatal("join did not cancel the held leave")
	}
	if l.Join("room", "alice") {
		t.Fatal("a second join cancelled a leave that is gone")
	}

	// Another channel or another user cancels nothing.
	l.Hold("room", "alice", "a.2", at(2100))
	if l.Join("hall", "alice") || l.Join("room", "bob") {
		t.Fatal("a join of another channel or user cancelled a leave")
	}
	// Anonymous leaves are never held; a full table holds no more.
	if l.Hold("room", "", "x.1", at(2000)) || l.Join("room", "") {
		t.Fatal("anonymous leave held")
	}
	l.Hold("room", "alice", "a.3", at(2200)) // alice's second tab
	l.Hold("hall", "bob", "b.1", at(1500))
	if l.Hold("hall", "carol", "c.1", at(1600)) {
		t.Fatal("held beyond the capacity")
	}
	if n, ok := l.Next(); !ok || !n.Equal(at(1500)) {
		t.Fatalf("next %v %v", n, ok)
	}
	// Two connections of one user left: one join cancels the older leave only.
	if !l.Join("room", "alice") {
		t.Fatal("join did not cancel")
	}
	if got := names(l.Due(at(1499), nil)); got != "[]" {
		t.Fatalf("due early: %s", got)
	}
	if got := names(l.Due(at(5000), nil)); got != "[hall/bob/b.1 room/alice/a.3]" {
		t.Fatalf("due: %s", got)
	}
	if _, ok := l.Next(); ok || l.Len() != 0 || len(l.byKey) != 0 {
		t.Fatalf("left over: %d %v", l.Len(), l.byKey)
	}
}

// TestLingerSameDue: leaves of one user due at the same instant come out
// one by one whatever the heap's order, and a join between them still
// cancels a held one.
func TestLingerSameDue(t *testing.T) {
	l := NewLinger(100)
	due := time.Unix(5, 0)
	for i := range 10 {
		l.Hold("room", "alice", fmt.Sprint(i), due)
		l.Hold("room", "bob", fmt.Sprint(i), due.Add(time.Second))
	}
	if got := len(l.Due(due, nil)); got != 10 {
		t.Fatalf("due %d, want 10", got)
	}
	for range 10 {
		if !l.Join("room", "bob") {
			t.Fatal("bob's leave not cancelled")
		}
	}
	if l.Len() != 0 || len(l.byKey) != 0 {
		t.Fatalf("left over %d %v", l.Len(), l.byKey)
	}
}
