package hub

import (
	"errors"
	"testing"
)

type recSink struct{ got []string }

func (s *recSink) Deliver(ch string, data []byte) { s.got = append(s.got, ch+" "+string(data)) }

func TestMemoryBroker(t *testing.T) {
	b := NewMemoryBroker()
	var err error
	record := func(e error) { err = e }
	b.Publish("a", []byte("1"), record)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("publish before Start: %v", err)
	}
	s := &recSink{}
	if err := b.Start(s); err != nil {
		t.Fatal(err)
	}
	b.Subscribe("a", record)
	if err != nil || !b.Ready() {
		t.Fatalf("subscribe: %v, ready %v", err, b.Ready())
	}
	data := []byte("2")
	b.Publish("a", data, record)
	data[0] = 'x' // the caller may reuse data once Publish returned
	if err != nil || len(s.got) != 1 || s.got[0] != "a 2" {
		t.Fatalf("publish: %v, sink got %q", err, s.got)
	}
	b.Unsubscribe("a")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b.Publish("a", []byte("3"), record)
	if !errors.Is(err, ErrUnavailable) || b.Ready() || len(s.got) != 1 {
		t.Fatalf("after Close: %v, ready %v, sink %q", err, b.Ready(), s.got)
	}
}
