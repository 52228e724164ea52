package hub

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wshub/wshub/hub/access"
	"github.com/wshub/wshub/hub/history"
)

// streamBroker is fakeBroker with streams: offsets assigned at publish, and
// reads answered with the stream as it was when asked, but only when the
// test lets them (release), so live traffic can be put between the two.
// With deferred set, publications wait in pending until flush.
type streamBroker struct {
	*fakeBroker
	smu      sync.Mutex
	streams  map[string][]history.Entry
	epoch    string
	size     int // entries kept: the newest
	reads    []func()
	deferred bool
	pending  []func()
	drop     int // deliveries to lose, like a pub/sub connection that went away
}

func newStreamBroker() *streamBroker {
	return &streamBroker{fakeBroker: newFakeBroker(), streams: map[string][]history.Entry{}, epoch: "e1", size: 100}
}

func (b *streamBroker) PublishHistory(ch string, data []byte, _ history.Options, done func(history.Position, error)) {
	b.smu.Lock()
	s := b.streams[ch]
	off := uint64(1)
	if len(s) > 0 {
		off = s[len(s)-1].Offset + 1
	}
	s = append(s, history.Entry{Offset: off, Data: append([]byte(nil), data...)})
	if len(s) > b.size {
		s = s[len(s)-b.size:]
	}
	b.streams[ch] = s
	pos := history.Position{Offset: off, Epoch: b.epoch}
	deliver := func() { b.sink.(StreamSink).DeliverAt(ch, pos, data) }
	lose := b.drop > 0
	if lose {
		b.drop--
	} else if b.deferred {
		b.pending = append(b.pending, deliver)
	}
	b.smu.Unlock()
	if !b.deferred && !lose {
		deliver()
	}
	done(pos, nil)
}

func (b *streamBroker) ReadHistory(ch string, since uint64, limit int, done func(history.Read, error)) {
	b.smu.Lock()
	defer b.smu.Unlock()
	s := b.streams[ch]
	rd := history.Read{Pos: history.Position{Epoch: b.epoch}}
	if len(s) > 0 {
		rd.Pos.Offset = s[len(s)-1].Offset
	}
	for _, e := range s {
		if e.Offset > since && len(rd.Entries) < limit {
			rd.Entries = append(rd.Entries, e)
		}
	}
	b.reads = append(b.reads, func() { done(rd, nil) })
}

// release answers the held reads, oldest first.
func (b *streamBroker) release() int { return b.take(&b.reads) }

// flush delivers the deferred publications.
func (b *streamBroker) flush() { b.take(&b.pending) }

// take runs and empties one of the held queues, returning its length.
func (b *streamBroker) take(q *[]func()) int {
	b.smu.Lock()
	fs := *q
	*q = nil
	b.smu.Unlock()
	for _, f := range fs {
		f()
	}
	return len(fs)
}

type streamFixture struct {
	*protoFixture
	sb *streamBroker
}

// newStreamProto is a hub whose "hist" namespace keeps history (recovery_max
// as given), over a streamBroker, on two loops.
func newStreamProto(t *testing.T, recoveryMax int) *streamFixture {
	return newStreamProtoWith(t, access.Presence{}, recoveryMax, Config{})
}

// newStreamProtoWith is newStreamProto with presence options for "hist"
// and the rest of the hub's configuration.
func newStreamProtoWith(t *testing.T, pres access.Presence, recoveryMax int, cfg Config) *streamFixture {
	ns := access.Namespace{Name: "hist", Subscribe: access.Anyone, Publish: access.Anyone,
		History: history.Options{Size: 100, TTL: time.Minute}, RecoveryMax: recoveryMax, Presence: pres}
	pol, err := access.NewPolicy(access.Namespace{Subscribe: access.Anyone, Publish: access.Anyone}, []access.Namespace{ns}, true)
	if err != nil {
		t.Fatal(err)
	}
	sb := newStreamBroker()
	cfg.Policy = pol
	h, loops := testHub(t, sb, 2, cfg)
	return &streamFixture{&protoFixture{t: t, h: h, b: sb.fakeBroker, loops: loops}, sb}
}

// publish publishes n messages {"n":i} on ch through the broker.
func (p *streamFixture) publish(ch string, from, to int) {
	for i := from; i <= to; i++ {
		p.sb.PublishHistory(ch, fmt.Appendf(nil, `{"n":%d}`, i), history.Options{Size: 100}, func(history.Position, error) {})
	}
	runAll(p.loops)
}

// msgs are the message frames of offsets from..to on ch of the fake's
// stream (epoch e1); the first publication of a stream carries its epoch.
func msgs(ch string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		epoch := ""
		if i == 1 {
			epoch = `,"epoch":"e1"`
		}
		out = append(out, fmt.Sprintf(`{"op":"message","channel":"%s","offset":%d%s,"data":{"n":%d}}`, ch, i, epoch, i))
	}
	return out
}

func (p *streamFixture) answerReads() {
	p.t.Helper()
	if p.sb.release() == 0 {
		p.t.Fatal("no history read was out")
	}
	runAll(p.loops)
}

func TestHistorySubscribeOKCarriesThePosition(t *testing.T) {
	p := newStreamProto(t, 0)
	c := p.open(0)
	p.send(c, `{"op":"subscribe","channel":"hist:a","id":1}`)
	p.expect(c) // waits for the stream's position
	p.answerReads()
	p.expect(c, `{"op":"ok","id":1,"offset":0,"epoch":"e1"}`)
	p.publish("hist:a", 1, 2)
	p.expect(c, msgs("hist:a", 1, 2)...)

	// A second subscriber on the same loop: the loop knows the position.
	d := p.open(0)
	p.send(d, `{"op":"subscribe","channel":"hist:a","id":2}`)
	p.expect(d, `{"op":"ok","id":2,"offset":2,"epoch":"e1"}`)

	// Publishes on a history channel are answered with their offset.
	p.send(c, `{"op":"publish","channel":"hist:a","data":{"n":3},"id":3}`)
	p.expect(c, `{"op":"ok","id":3,"offset":3}`, msgs("hist:a", 3, 3)[0])
	p.expect(d, msgs("hist:a", 3, 3)...)
}

func TestHistoryRecoveryReplaysThenGoesLive(t *testing.T) {
	p := newStreamProto(t, 0)
	p.publish("hist:a", 1, 5)
	c := p.open(1)
	p.send(c, `{"op":"subscribe","channel":"hist:a","id":1,"since":2,"epoch":"e1"}`)
	p.answerReads()
	p.expect(c, append([]string{`{"op":"ok","id":1,"offset":5,"epoch":"e1","recovered":true,"replayed":3}`}, msgs("hist:a", 3, 5)...)...)
	p.publish("hist:a", 6, 6)
	p.expect(c, msgs("hist:a", 6, 6)...)

	// since = the latest offset: recovered, nothing to replay.
	d := p.open(1)
	p.send(d, `{"op":"subscribe","channel":"hist:a","id":2,"since":6}`)
	p.answerReads()
	p.expect(d, `{"op":"ok","id":2,"offset":6,"epoch":"e1","recovered":true,"replayed":0}`)
	checkCatching(t, p.h)
}

// Live frames the loop handed out while the read was out: read again.
func TestHistoryRecoveryRereadsWhenLiveWentPast(t *testing.T) {
	p := newStreamProto(t, 0)
	a := p.open(0)
	p.send(a, `{"op":"subscribe","channel":"hist:a","id":1}`)
	p.answerReads()
	p.expect(a, `{"op":"ok","id":1,"offset":0,"epoch":"e1"}`)
	p.publish("hist:a", 1, 3)
	p.expect(a, msgs("hist:a", 1, 3)...)

	c := p.open(0)
	p.send(c, `{"op":"subscribe","channel":"hist:a","id":2,"since":1}`)
	p.publish("hist:a", 4, 5) // loop 0 hands out 4 and 5; c's read says 3
	p.answerReads()           // finish sees 5 > 3: a second read
	p.expect(c)
	p.answerReads()
	p.expect(c, append([]string{`{"op":"ok","id":2,"offset":5,"epoch":"e1","recovered":true,"replayed":4}`}, msgs("hist:a", 2, 5)...)...)
	p.publish("hist:a", 6, 6)
	p.expect(c, msgs("hist:a", 6, 6)...)
	p.expect(a, msgs("hist:a", 4, 6)...)
	checkCatching(t, p.h)
}

// A read that saw publications still on their way to the loop: the member
// skips them when they arrive.
func TestHistoryRecoverySkipsWhatItReplayed(t *testing.T) {
	p := newStreamProto(t, 0)
	p.flushSkipsReplayed(p.recoverAhead())
	checkCatching(t, p.h)
}

// flushSkipsReplayed delivers what recoverAhead held back: c gets none of
// it (it replayed 3 and 4), then a live 5.
func (p *streamFixture) flushSkipsReplayed(c *fakeConn) {
	p.t.Helper()
	p.sb.flush()
	runAll(p.loops)
	p.expect(c) // 3 and 4 are its already
	p.sb.deferred = false
	p.publish("hist:a", 5, 5)
	p.expect(c, msgs("hist:a", 5, 5)...)
}

// recoverAhead publishes 1 to 4 on hist:a, 3 and 4 held back by the
// broker, and subscribes a connection on loop 0 that recovers all four:
// its read is ahead of what its loop has handed out.
func (p *streamFixture) recoverAhead() *fakeConn {
	p.t.Helper()
	p.publish("hist:a", 1, 2)
	p.sb.deferred = true
	p.publish("hist:a", 3, 4) // in the stream, not yet delivered
	c := p.open(0)
	p.send(c, `{"op":"subscribe","channel":"hist:a","id":1,"since":0}`)
	p.answerReads()
	p.expect(c, append([]string{`{"op":"ok","id":1,"offset":4,"epoch":"e1","recovered":true,"replayed":4}`}, msgs("hist:a", 1, 4)...)...)
	return c
}

func TestHistoryRecoveryRefusals(t *testing.T) {
	p := newStreamProto(t, 3)
	p.publish("hist:a", 1, 5)
	cases := []struct{ name, sub string }{
		{"epoch differs", `"since":4,"epoch":"old"`},
		{"since past the end", `"since":99`},
		{"more missed than recovery_max", `"since":1`},
	}
	for i, tc := range cases {
		c := p.open(i % 2)
		p.send(c, `{"op":"subscribe","channel":"hist:a","id":1,`+tc.sub+`}`)
		p.answerReads()
		p.expect(c, fmt.Sprintf(`{"op":"ok","id":1,"offset":%d,"epoch":"e1","recovered":false}`, 5+i))
		p.publish("hist:a", 6+i, 6+i)
		p.expect(c, msgs("hist:a", 6+i, 6+i)...) // live goes on
	}

	// History trimmed past since.
	q := newStreamProto(t, 0)
	q.sb.size = 3
	q.publish("hist:b", 1, 6)
	c := q.open(0)
	q.send(c, `{"op":"subscribe","channel":"hist:b","id":1,"since":1}`)
	q.answerReads()
	q.expect(c, `{"op":"ok","id":1,"offset":6,"epoch":"e1","recovered":false}`)

	// A channel without history.
	d := q.open(0)
	q.send(d, `{"op":"subscribe","channel":"plain","id":2,"since":1}`)
	q.expect(d, `{"op":"ok","id":2,"recovered":false}`)
	checkCatching(t, p.h)
}

// A replay goes out as the connection's queue allows; live frames of the
// channel wait behind it.
func TestHistoryReplayIsPaced(t *testing.T) {
	p := newStreamProto(t, 0)
	// A subscriber on the same loop: the loop has handed out up to the
	// read's end, so only the replay queue keeps live frames behind it.
	a := p.open(0)
	p.send(a, `{"op":"subscribe","channel":"hist:a"}`)
	p.answerReads()
	p.publish("hist:a", 1, 6)
	a.take()
	c := p.open(0)
	c.room = 4 // two frames per step
	p.send(c, `{"op":"subscribe","channel":"hist:a","id":1,"since":0}`)
	p.answerReads()
	p.expect(c, append([]string{`{"op":"ok","id":1,"offset":6,"epoch":"e1","recovered":true,"replayed":6}`}, msgs("hist:a", 1, 2)...)...)
	if !c.writableWanted {
		t.Fatal("the replay did not ask to be called back")
	}
	p.publish("hist:a", 7, 7) // behind the replay
	p.expect(c)
	var got []string
	for i := 0; c.writableWanted && i < 10; i++ {
		c.writableWanted = false
		p.h.OnWritable(c)
		got = append(got, c.take()...)
	}
	if want := msgs("hist:a", 3, 7); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("paced replay:\n got %q\nwant %q", got, want)
	}
	p.publish("hist:a", 8, 8)
	p.expect(c, msgs("hist:a", 8, 8)...)
	if c.closedWith != 0 {
		t.Fatalf("closed with %d", c.closedWith)
	}
	checkCatching(t, p.h)
}

func TestHistoryReadOfALeftMemberIsDropped(t *testing.T) {
	p := newStreamProto(t, 0)
	p.publish("hist:a", 1, 3)
	c := p.open(0)
	p.send(c, `{"op":"subscribe","channel":"hist:a","id":1,"since":0}`)
	p.send(c, `{"op":"unsubscribe","channel":"hist:a","id":2}`)
	p.expect(c, `{"op":"ok","id":1,"recovered":false}`, `{"op":"ok","id":2}`)
	p.send(c, `{"op":"subscribe","channel":"hist:a","id":3}`)
	p.answerReads() // the first read finds its member gone; the second answers
	p.expect(c, `{"op":"ok","id":3,"offset":3,"epoch":"e1"}`)
}

// await runs the loops until c has received len(want) frames (repairs
// finish on a goroutine of their own), then checks them.
func (p *streamFixture) await(c *fakeConn, want ...string) {
	p.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		runAll(p.loops)
		c.mu.Lock()
		n := len(c.frames)
		c.mu.Unlock()
		if n >= len(want) || time.Now().After(deadline) {
			break
		}
		p.sb.release()
		time.Sleep(time.Millisecond) // polling for the repair's goroutine
	}
	p.expect(c, want...)
}

func TestGapRepairFillsSkippedOffsets(t *testing.T) {
	p := newStreamProto(t, 0)
	c := p.open(0)
	d := p.open(1)
	for i, x := range []*fakeConn{c, d} {
		p.send(x, fmt.Sprintf(`{"op":"subscribe","channel":"hist:a","id":%d}`, i))
		p.answerReads()
		p.expect(x, fmt.Sprintf(`{"op":"ok","id":%d,"offset":0,"epoch":"e1"}`, i))
	}
	p.publish("hist:a", 1, 1)
	p.sb.drop = 2
	p.publish("hist:a", 2, 4) // 2 and 3 lost on the way, 4 skips them
	p.await(c, msgs("hist:a", 1, 4)...)
	p.await(d, msgs("hist:a", 1, 4)...)
	if got := p.h.stats.repaired.Load(); got != 3 { // 2, 3 and 4 itself: the read has it
		t.Fatalf("repaired %d publications, want 3", got)
	}
	p.publish("hist:a", 5, 5)
	p.expect(c, msgs("hist:a", 5, 5)...)
}

func TestGapRepairAfterResubscribe(t *testing.T) {
	p := newStreamProto(t, 0)
	p.publish("hist:a", 1, 2)
	c := p.open(0)
	p.send(c, `{"op":"subscribe","channel":"hist:a","id":1}`)
	p.answerReads()
	p.expect(c, `{"op":"ok","id":1,"offset":2,"epoch":"e1"}`)
	p.sb.drop = 3
	p.publish("hist:a", 3, 5) // the pub/sub connection was down
	p.expect(c)
	p.h.Resubscribed("hist:a")
	p.await(c, msgs("hist:a", 3, 5)...)

	// What the stream no longer holds is counted as lost.
	q := newStreamProto(t, 0)
	q.sb.size = 2
	e := q.open(0)
	q.send(e, `{"op":"subscribe","channel":"hist:b","id":1}`)
	q.answerReads()
	q.expect(e, `{"op":"ok","id":1,"offset":0,"epoch":"e1"}`)
	q.publish("hist:b", 1, 1)
	q.sb.drop = 4
	q.publish("hist:b", 2, 6) // 2..5 lost; the stream keeps only 5 and 6
	q.await(e, append(msgs("hist:b", 1, 1), msgs("hist:b", 5, 6)...)...)
	if got := q.h.stats.lost.Load(); got != 3 {
		t.Fatalf("lost %d, want 3", got)
	}
}

// An unsubscribe takes the channel's still-queued replay with it: nothing
// of a channel follows the unsubscribe's ok.
func TestHistoryUnsubscribeDropsQueuedReplay(t *testing.T) {
	p := newStreamProto(t, 0)
	p.publish("hist:a", 1, 6)
	c := p.open(0)
	c.room = 4 // two frames per step
	p.send(c, `{"op":"subscribe","channel":"hist:a","id":1,"since":0}`)
	p.answerReads()
	p.expect(c, append([]string{`{"op":"ok","id":1,"offset":6,"epoch":"e1","recovered":true,"replayed":6}`}, msgs("hist:a", 1, 2)...)...)
	p.send(c, `{"op":"unsubscribe","channel":"hist:a","id":2}`)
	p.expect(c, `{"op":"ok","id":2}`)
	p.h.OnWritable(c)
	runAll(p.loops)
	p.expect(c)
	if q := p.h.loops[0].replays; len(q) != 0 {
		t.Fatalf("%d replay queues left", len(q))
	}
	checkCatching(t, p.h)
}

// checkCatching checks every loopSubs' count of catching-up members
// against their flags (fan-out trusts it to skip the flag checks).
func checkCatching(t *testing.T, h *Hub) {
	t.Helper()
	for i := range h.table.stripes {
		sh := &h.table.stripes[i]
		sh.mu.RLock()
		for _, ch := range sh.m {
			for _, ls := range ch.active {
				n := int32(0)
				for _, m := range ls.members {
					if m.flags&mCatchup != 0 {
						n++
					}
				}
				if n != ls.catching {
					t.Errorf("%s on loop %d: %d members catching up, counted %d", ch.name, ls.loop, n, ls.catching)
				}
			}
		}
		sh.mu.RUnlock()
	}
}
