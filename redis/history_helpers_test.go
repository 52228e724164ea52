package redis

import (
	"sync"
	"testing"
	"time"

	"github.com/wshub/wshub/hub/history"
)

// histSink is a hub.StreamSink that records what it is given per channel.
type histSink struct {
	mu      sync.Mutex
	plain   map[string][]string
	at      map[string][]histMsg
	resub   map[string]int
	overlap bool // a call came while another for the same channel ran
	busy    map[string]bool
	// onResub, when set, runs at each Resubscribed (outside the lock), as
	// the hub's recovery read would.
	onResub func(ch string)
}

type histMsg struct {
	pos  history.Position
	data string
}

func newHistSink() *histSink {
	return &histSink{plain: map[string][]string{}, at: map[string][]histMsg{}, resub: map[string]int{}, busy: map[string]bool{}}
}

// enter and leave catch overlapping calls for one channel (the Sink contract).
func (s *histSink) enter(ch string) {
	s.mu.Lock()
	s.overlap = s.overlap || s.busy[ch]
	s.busy[ch] = true
}

func (s *histSink) leave(ch string) {
	s.busy[ch] = false
	s.mu.Unlock()
}

func (s *histSink) Deliver(ch string, data []byte) {
	s.enter(ch)
	defer s.leave(ch)
	s.plain[ch] = append(s.plain[ch], string(data))
}

func (s *histSink) DeliverAt(ch string, pos history.Position, data []byte) {
	s.enter(ch)
	defer s.leave(ch)
	s.at[ch] = append(s.at[ch], histMsg{pos, string(data)})
}

func (s *histSink) Resubscribed(ch string) {
	s.enter(ch)
	s.resub[ch]++
	fn := s.onResub
	s.leave(ch)
	if fn != nil {
		fn(ch)
	}
}

func (s *histSink) msgs(ch string) []histMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]histMsg(nil), s.at[ch]...)
}

func (s *histSink) plainMsgs(ch string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.plain[ch]...)
}

func (s *histSink) resubs(ch string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resub[ch]
}

// startHistBroker is startBroker with a histSink.
func startHistBroker(t testing.TB, cfg Config) (*Broker, *histSink) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	b, err := New(fastConfig(cfg))
	must(t, err)
	t.Cleanup(func() { b.Close() })
	sink := newHistSink()
	must(t, b.Start(sink))
	eventually(t, 5*time.Second, b.Ready, "broker ready")
	return b, sink
}

// publishHist is PublishHistory, waiting for its answer.
func publishHist(t testing.TB, b *Broker, ch, data string, opt history.Options) history.Position {
	t.Helper()
	var pos history.Position
	must(t, await(t, func(done func(error)) {
		b.PublishHistory(ch, []byte(data), opt, func(p history.Position, err error) { pos = p; done(err) })
	}))
	return pos
}

// readHist is ReadHistory, waiting for its answer; the entries are copied.
func readHist(t testing.TB, b *Broker, ch string, since uint64, limit int) history.Read {
	t.Helper()
	var rd history.Read
	must(t, await(t, func(done func(error)) {
		b.ReadHistory(ch, since, limit, func(r history.Read, err error) {
			rd.Pos = r.Pos
			for _, e := range r.Entries {
				rd.Entries = append(rd.Entries, history.Entry{Offset: e.Offset, Data: append([]byte(nil), e.Data...)})
			}
			done(err)
		})
	}))
	return rd
}

// offsets lists the entries' offsets.
func offsets(rd history.Read) []uint64 {
	var out []uint64
	for _, e := range rd.Entries {
		out = append(out, e.Offset)
	}
	return out
}
