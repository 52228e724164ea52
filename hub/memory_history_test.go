package hub

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wshub/wshub/hub/history"
)

// streamSink records deliveries as "channel offset epoch data".
type streamSink struct {
	mu  sync.Mutex
	got []string
}

func (s *streamSink) Deliver(ch string, data []byte) { s.add(ch + " - " + string(data)) }
func (s *streamSink) DeliverAt(ch string, pos history.Position, data []byte) {
	s.add(fmt.Sprintf("%s %d %s %s", ch, pos.Offset, pos.Epoch, data))
}
func (s *streamSink) Resubscribed(string) {}
func (s *streamSink) add(v string) {
	s.mu.Lock()
	s.got = append(s.got, v)
	s.mu.Unlock()
}

func epochCounter() func() string {
	n := 0
	return func() string { n++; return "e" + strconv.Itoa(n) }
}

// publishH publishes and returns what done got.
func publishH(b *MemoryBroker, ch, data string, opt history.Options) (history.Position, error) {
	var pos history.Position
	var err error
	b.PublishHistory(ch, []byte(data), opt, func(p history.Position, e error) { pos, err = p, e })
	return pos, err
}

// readH reads and returns a copy of what done got.
func readH(b *MemoryBroker, ch string, since uint64, limit int) (history.Position, []string, error) {
	var pos history.Position
	var got []string
	var err error
	b.ReadHistory(ch, since, limit, func(r history.Read, e error) {
		pos, err = r.Pos, e
		for _, en := range r.Entries {
			got = append(got, fmt.Sprintf("%d:%s", en.Offset, en.Data))
		}
	})
	return pos, got, err
}

func TestMemoryBrokerHistory(t *testing.T) {
	b := NewMemoryBrokerWith(MemoryConfig{Epochs: epochCounter()})
	defer b.Close()
	opt := history.Options{Size: 2, TTL: time.Minute}
	if _, err := publishH(b, "a", "1", opt); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("PublishHistory before Start: %v", err)
	}
	s := &streamSink{}
	b.Start(s)
	for i := 1; i <= 3; i++ {
		pos, err := publishH(b, "a", strconv.Itoa(i), opt)
		if err != nil || pos != (history.Position{Offset: uint64(i), Epoch: "e1"}) {
			t.Fatalf("publication %d at %+v, %v", i, pos, err)
		}
	}
	publishH(b, "b", "x", history.Options{}) // no history: a plain publication
	if want := "[a 1 e1 1 a 2 e1 2 a 3 e1 3 b - x]"; fmt.Sprint(s.got) != want {
		t.Fatalf("sink got %q, want %s", s.got, want)
	}
	pos, got, err := readH(b, "a", 0, 10)
	if err != nil || pos != (history.Position{Offset: 3, Epoch: "e1"}) || fmt.Sprint(got) != "[2:2 3:3]" {
		t.Fatalf("read a: %+v %v %v", pos, got, err)
	}
	if pos, got, _ := readH(b, "b", 0, 10); pos != (history.Position{}) || got != nil {
		t.Fatalf("read b, without history: %+v %v", pos, got)
	}
	b.Close()
	if _, err := publishH(b, "a", "4", opt); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("PublishHistory after Close: %v", err)
	}
	if _, _, err := readH(b, "a", 0, 10); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("ReadHistory after Close: %v", err)
	}
}

func TestMemoryBrokerHistoryPlainSink(t *testing.T) {
	b := NewMemoryBroker()
	defer b.Close()
	s := &recSink{}
	b.Start(s)
	if pos, err := publishH(b, "a", "1", history.Options{Size: 5}); err != nil || pos.Offset != 1 {
		t.Fatalf("publish: %+v, %v", pos, err)
	}
	if fmt.Sprint(s.got) != "[a 1]" {
		t.Fatalf("a plain sink got %q", s.got)
	}
}

// The callback gets copies, and may call the broker again: it runs under
// no lock.
func TestMemoryBrokerReadHistoryCopies(t *testing.T) {
	b := NewMemoryBroker()
	defer b.Close()
	b.Start(&streamSink{})
	opt := history.Options{Size: 1}
	publishH(b, "a", `"old"`, opt)
	var inner history.Position
	b.ReadHistory("a", 0, 1, func(r history.Read, err error) {
		publishH(b, "a", `"new"`, opt) // overwrites the stream's only entry
		_, got, _ := readH(b, "a", 0, 1)
		if string(r.Entries[0].Data) != `"old"` || fmt.Sprint(got) != `[2:"new"]` {
			t.Errorf("read %q, then %v", r.Entries[0].Data, got)
		}
		inner = r.Pos
	})
	if inner.Offset != 1 {
		t.Fatalf("outer read at %+v", inner)
	}
}

func TestMemoryBrokerHistoryBudget(t *testing.T) {
	b := NewMemoryBrokerWith(MemoryConfig{HistoryMaxBytes: 1000, Epochs: epochCounter()})
	defer b.Close()
	b.Start(&streamSink{})
	opt := history.Options{Size: 10}
	publishH(b, "a", "1", opt)
	publishH(b, "a", string(make([]byte, 1000)), opt) // too large to keep: a is dropped
	if pos, _ := publishH(b, "a", "3", opt); pos != (history.Position{Offset: 1, Epoch: "e2"}) {
		t.Fatalf("after the budget dropped the stream: %+v", pos)
	}
}

func TestMemoryBrokerSweeps(t *testing.T) {
	b := NewMemoryBrokerWith(MemoryConfig{SweepEvery: time.Millisecond})
	b.Start(&streamSink{})
	publishH(b, "a", "1", history.Options{Size: 1, TTL: time.Millisecond})
	streams := func() int {
		b.history.mu.Lock()
		defer b.history.mu.Unlock()
		return b.history.store.Len()
	}
	for deadline := time.Now().Add(5 * time.Second); streams() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("an expired stream was not swept")
		}
	}
	b.Close()
	select {
	case <-b.history.done:
	default:
		t.Fatal("Close returned before the sweeper stopped")
	}
}

// Concurrent publishers on one channel: the sink sees the offsets in order.
func TestMemoryBrokerHistoryOrder(t *testing.T) {
	b := NewMemoryBroker()
	defer b.Close()
	s := &streamSink{}
	b.Start(s)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 500 {
				publishH(b, "a", "1", history.Options{Size: 10})
			}
		})
	}
	wg.Wait()
	if len(s.got) != 2000 {
		t.Fatalf("%d deliveries", len(s.got))
	}
	for i, g := range s.got {
		var off uint64
		fmt.Sscanf(g, "a %d", &off)
		if off != uint64(i+1) {
			t.Fatalf("delivery %d at offset %d", i, off)
		}
	}
}
