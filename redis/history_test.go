package redis

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/wshub/wshub/hub/history"
	"github.com/wshub/wshub/redis/redistest"
)

var histKeep = history.Options{Size: 1000, TTL: time.Minute}

func TestHistKeysShareTheChannelSlot(t *testing.T) {
	chans := []string{"a", "room:42", "dm:#alice,bob", "x/y=z@w.v-u_t", strings.Repeat("z", 255),
		// Not hub channel names, but a direct caller's: braces follow
		// Redis' hash-tag rules.
		"a{b}c", "{b}", "{}x", "a}b", "}{", "a{b", "{{a}}", "x{}{y}"}
	seen := map[string]string{}
	for _, ch := range chans {
		stream, meta := histKeys(ch)
		if s, m, c := slotOf(stream), slotOf(meta), slotOf(ch); s != c || m != c {
			t.Errorf("%q: slots stream %d (%q) meta %d (%q), channel %d", ch, s, stream, m, meta, c)
		}
		for _, k := range []string{stream, meta} {
			if other, dup := seen[k]; dup {
				t.Errorf("key %q of %q and %q", k, ch, other)
			}
			seen[k] = ch
		}
	}
	if s, m := histKeys("room:42"); s != "ws:hist:{room:42}" || m != "ws:hmeta:{room:42}" {
		t.Errorf("keys of room:42: %q %q", s, m)
	}
}

func TestParseHistMessage(t *testing.T) {
	pos, data, ok := parseHistMessage(`!12:k3.x9:{"a":"b:c"}`)
	if !ok || pos != (history.Position{Offset: 12, Epoch: "k3.x9"}) || string(data) != `{"a":"b:c"}` {
		t.Fatalf("got %v %q %v", pos, data, ok)
	}
	for _, bad := range []string{"", "!", "12:e:d", "!:e:d", "!0:e:d", "!x:e:d", "!-1:e:d", "!+1:e:d", "!1:e", "!1::d",
		"!" + strconv.FormatUint(history.MaxOffset+1, 10) + ":e:d", "!18446744073709551616:e:d"} {
		if _, _, ok := parseHistMessage(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Two instances publish to one channel at once: the offsets are 1..N, each
// once, and both instances' sinks see every publication at the same
// offsets, in offset order.
func TestHistoryOffsetsAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	a, sa := startHistBroker(t, Config{URL: srv.URL(), InstanceID: "ha"})
	b, sb := startHistBroker(t, Config{URL: srv.URL(), InstanceID: "hb"})
	const ch, per = "h:shared", 200
	must(t, subscribe(t, a, ch))
	must(t, subscribe(t, b, ch))
	var mu sync.Mutex
	got := map[uint64]string{}
	epochs := map[string]bool{}
	var wg sync.WaitGroup
	for i := range per {
		for j, p := range []*Broker{a, b} {
			data := fmt.Sprintf(`"%d/%d"`, j, i)
			wg.Add(1)
			p.PublishHistory(ch, []byte(data), histKeep, func(pos history.Position, err error) {
				defer wg.Done()
				if err != nil {
					t.Errorf("publish %s: %v", data, err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if prev, dup := got[pos.Offset]; dup {
					t.Errorf("offset %d given to %s and %s", pos.Offset, prev, data)
				}
				got[pos.Offset] = data
				epochs[pos.Epoch] = true
			})
		}
	}
	wg.Wait()
	if len(got) != 2*per || len(epochs) != 1 {
		t.Fatalf("%d offsets, %d epochs", len(got), len(epochs))
	}
	for off := uint64(1); off <= 2*per; off++ {
		if _, ok := got[off]; !ok {
			t.Fatalf("offset %d not given", off)
		}
	}
	for name, s := range map[string]*histSink{"ha": sa, "hb": sb} {
		eventually(t, 5*time.Second, func() bool { return len(s.msgs(ch)) == 2*per }, "every publication on "+name)
		for i, m := range s.msgs(ch) {
			if m.pos.Offset != uint64(i+1) || !epochs[m.pos.Epoch] || m.data != got[m.pos.Offset] {
				t.Fatalf("%s: delivery %d is %+v, published %q at %d", name, i, m, got[uint64(i+1)], i+1)
			}
		}
		if len(s.plainMsgs(ch)) != 0 || s.overlap {
			t.Fatalf("%s: plain deliveries %v, overlapping calls %v", name, s.plainMsgs(ch), s.overlap)
		}
	}
}

func TestHistoryReadSinceAndLimit(t *testing.T) {
	srv := redistest.Start(t)
	b, _ := startHistBroker(t, Config{URL: srv.URL()})
	const ch = "h:read"
	var epoch string
	for i := 1; i <= 5; i++ {
		pos := publishHist(t, b, ch, strconv.Itoa(i*10), histKeep)
		if pos.Offset != uint64(i) || (epoch != "" && pos.Epoch != epoch) {
			t.Fatalf("publication %d at %+v (epoch before %q)", i, pos, epoch)
		}
		epoch = pos.Epoch
	}
	want := history.Position{Offset: 5, Epoch: epoch}
	for _, c := range []struct {
		since uint64
		limit int
		want  []uint64
	}{
		{0, 2, []uint64{1, 2}},
		{0, 100, []uint64{1, 2, 3, 4, 5}},
		{3, 10, []uint64{4, 5}},
		{4, 1, []uint64{5}},
		{5, 10, nil},
		{9, 10, nil},
		{history.MaxOffset, 10, nil},
		{0, 0, nil},
		{2, -1, nil},
	} {
		rd := readHist(t, b, ch, c.since, c.limit)
		if rd.Pos != want || !slices.Equal(offsets(rd), c.want) {
			t.Errorf("since %d limit %d: %+v %v, want %v", c.since, c.limit, rd.Pos, offsets(rd), c.want)
		}
		for _, e := range rd.Entries {
			if string(e.Data) != strconv.Itoa(int(e.Offset)*10) {
				t.Errorf("entry %d holds %q", e.Offset, e.Data)
			}
		}
	}
	// A channel without a stream reads as empty, and the read creates nothing.
	if rd := readHist(t, b, "h:none", 3, 10); rd.Pos != (history.Position{}) || len(rd.Entries) != 0 {
		t.Fatalf("no stream: %+v", rd)
	}
	if n, err := srv.Do("EXISTS", "ws:hist:{h:none}", "ws:hmeta:{h:none}").AsInt64(); err != nil || n != 0 {
		t.Fatalf("a read created %d keys (%v)", n, err)
	}
}

// A read sees the newest history_size entries, exactly, though the stream
// is trimmed approximately (whole nodes, at most 100 entries each); a
// smaller history_size applies from the next publication on.
func TestHistoryTrim(t *testing.T) {
	srv := redistest.Start(t)
	b, _ := startHistBroker(t, Config{URL: srv.URL()})
	const ch, size = "h:trim", 10
	newest := func(top uint64, n int) (want []uint64) {
		for off := top - uint64(n) + 1; off <= top; off++ {
			want = append(want, off)
		}
		return want
	}
	check := func(top uint64, n int) {
		t.Helper()
		rd := readHist(t, b, ch, 0, 1000)
		if rd.Pos.Offset != top || !slices.Equal(offsets(rd), newest(top, n)) {
			t.Fatalf("read since 0: %+v %v, want %v", rd.Pos, offsets(rd), newest(top, n))
		}
		if rd := readHist(t, b, ch, top-uint64(n)-5, 3); !slices.Equal(offsets(rd), newest(top, n)[:3]) {
			t.Fatalf("read since %d: %v", top-uint64(n)-5, offsets(rd))
		}
	}
	opt := history.Options{Size: size, TTL: time.Minute}
	for i := 1; i <= 2*size; i++ {
		publishHist(t, b, ch, strconv.Itoa(i), opt)
	}
	check(2*size, size)
	for i := 2*size + 1; i <= 500; i++ {
		publishHist(t, b, ch, strconv.Itoa(i), opt)
	}
	check(500, size)
	if n, err := srv.Do("XLEN", "ws:hist:{h:trim}").AsInt64(); err != nil || n < size || n > size+100 {
		t.Fatalf("XLEN %d %v, want %d to %d", n, err, size, size+100)
	}
	opt.Size = 4
	publishHist(t, b, ch, "501", opt)
	check(501, 4)
}

// Both keys expire history_ttl after the last publication; the next
// publication starts a new epoch at offset 1.
func TestHistoryTTL(t *testing.T) {
	srv := redistest.Start(t)
	b, _ := startHistBroker(t, Config{URL: srv.URL()})
	const ch = "h:ttl"
	opt := history.Options{Size: 10, TTL: 300 * time.Millisecond}
	first := publishHist(t, b, ch, "1", opt)
	if second := publishHist(t, b, ch, "2", opt); second.Offset != 2 || second.Epoch != first.Epoch {
		t.Fatalf("second publication at %+v after %+v", second, first)
	}
	for _, k := range []string{"ws:hist:{h:ttl}", "ws:hmeta:{h:ttl}"} {
		if ms, err := srv.Do("PTTL", k).AsInt64(); err != nil || ms <= 0 || ms > 300 {
			t.Fatalf("PTTL %s = %d %v", k, ms, err)
		}
	}
	eventually(t, 5*time.Second, func() bool {
		n, err := srv.Do("EXISTS", "ws:hist:{h:ttl}", "ws:hmeta:{h:ttl}").AsInt64()
		return err == nil && n == 0
	}, "both keys expired")
	if rd := readHist(t, b, ch, 2, 10); rd.Pos != (history.Position{}) {
		t.Fatalf("read after expiry: %+v", rd.Pos)
	}
	after := publishHist(t, b, ch, "3", opt)
	if after.Offset != 1 || after.Epoch == first.Epoch || after.Epoch == "" {
		t.Fatalf("after expiry: %+v, epoch before %q", after, first.Epoch)
	}
}

// One key lost without the other (evicted, or expired apart) means the
// past is lost: reads see no stream, the next publication a new epoch at 1,
// and no entry of the old epoch survives under the new one.
func TestHistoryHalfLost(t *testing.T) {
	srv := redistest.Start(t)
	b, _ := startHistBroker(t, Config{URL: srv.URL()})
	for _, lose := range []string{"ws:hmeta:", "ws:hist:"} {
		ch := "h:half-" + strings.TrimSuffix(lose, ":")
		var before history.Position
		for i := range 3 {
			before = publishHist(t, b, ch, strconv.Itoa(i), histKeep)
		}
		must(t, srv.Do("DEL", lose+"{"+ch+"}").Error())
		if rd := readHist(t, b, ch, 1, 10); rd.Pos != (history.Position{}) || len(rd.Entries) != 0 {
			t.Fatalf("%s lost: read %+v", lose, rd)
		}
		after := publishHist(t, b, ch, `"new"`, histKeep)
		if after.Offset != 1 || after.Epoch == before.Epoch {
			t.Fatalf("%s lost: publication at %+v after %+v", lose, after, before)
		}
		rd := readHist(t, b, ch, 0, 10)
		if rd.Pos != after || len(rd.Entries) != 1 || string(rd.Entries[0].Data) != `"new"` {
			t.Fatalf("%s lost: read %+v %v", lose, rd.Pos, offsets(rd))
		}
	}
}

// A Redis restarted without persistence has no stream: a new epoch at 1,
// and the channel's subscription is reported restored.
func TestHistoryRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	b, sink := startHistBroker(t, Config{URL: srv.URL()})
	const ch = "h:restart"
	must(t, subscribe(t, b, ch))
	var before history.Position
	for i := range 5 {
		before = publishHist(t, b, ch, strconv.Itoa(i), histKeep)
	}
	eventually(t, 2*time.Second, func() bool { return len(sink.msgs(ch)) == 5 }, "deliveries before the kill")
	srv.Kill()
	eventually(t, 3*time.Second, func() bool { return !b.Ready() }, "unready while Redis is down")
	srv.Start()
	eventually(t, 5*time.Second, func() bool { return b.Ready() && sink.resubs(ch) == 1 }, "ready and resubscribed")
	if rd := readHist(t, b, ch, before.Offset, 10); rd.Pos != (history.Position{}) {
		t.Fatalf("read after the restart: %+v", rd.Pos)
	}
	after := publishHist(t, b, ch, `"after"`, histKeep)
	if after.Offset != 1 || after.Epoch == before.Epoch {
		t.Fatalf("after the restart: %+v, before %+v", after, before)
	}
	eventually(t, 2*time.Second, func() bool {
		m := sink.msgs(ch)
		return len(m) == 6 && m[5] == histMsg{after, `"after"`}
	}, "the publication after the restart delivered at its position")
}

// Killing the pub/sub connection has every subscribed channel reported
// restored once, when Redis confirms it again, and never before; a channel
// subscribed afterwards is not.
func TestHistoryResubscribedAfterClientKill(t *testing.T) {
	srv := redistest.Start(t)
	b, sink := startHistBroker(t, Config{URL: srv.URL()})
	chans := []string{"h:r1", "h:r2", "h:r3"}
	for _, ch := range chans {
		must(t, subscribe(t, b, ch))
	}
	first := publishHist(t, b, "h:r1", "1", histKeep)
	// The recovery read a hub makes when told: it must not fail because
	// the broker is still resubscribing other channels.
	reads := make(chan error, 10)
	sink.mu.Lock()
	sink.onResub = func(ch string) {
		b.ReadHistory(ch, 0, 10, func(rd history.Read, err error) {
			if err == nil && ch == "h:r1" && (rd.Pos != first || len(rd.Entries) != 1) {
				err = fmt.Errorf("recovery read of %s: %+v", ch, rd)
			}
			reads <- err
		})
	}
	sink.mu.Unlock()
	eventually(t, 2*time.Second, func() bool { return len(sink.msgs("h:r1")) == 1 }, "delivery before the kill")
	before := b.Stats().Reconnects
	if n, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub").AsInt64(); err != nil || n < 1 {
		t.Fatalf("CLIENT KILL TYPE pubsub: %d %v", n, err)
	}
	eventually(t, 5*time.Second, func() bool {
		for _, ch := range chans {
			if sink.resubs(ch) != 1 {
				return false
			}
		}
		return b.Stats().Reconnects > before
	}, "every channel resubscribed")
	for range chans {
		must(t, <-reads)
	}
	admin := srv.Client()
	for _, ch := range chans {
		if n := redistest.NumSub(t, admin, ch, false); n != 1 {
			t.Fatalf("NUMSUB %s = %d after Resubscribed", ch, n)
		}
	}
	must(t, subscribe(t, b, "h:late"))
	pos := publishHist(t, b, "h:r1", "2", histKeep)
	eventually(t, 2*time.Second, func() bool { return len(sink.msgs("h:r1")) == 2 }, "delivery after the resubscription")
	if m := sink.msgs("h:r1")[1]; m.pos != pos {
		t.Fatalf("delivered at %+v, published at %+v", m.pos, pos)
	}
	if sink.resubs("h:late") != 0 || sink.overlap {
		t.Fatalf("new channel reported resubscribed %d times; overlapping calls %v", sink.resubs("h:late"), sink.overlap)
	}
}

// Plain publications keep their payload byte for byte; a history payload
// reaches a sink that is no StreamSink as its data; a malformed one is
// dropped, counted.
func TestHistoryPayloads(t *testing.T) {
	srv := redistest.Start(t)
	b, sink := startHistBroker(t, Config{URL: srv.URL()})
	plain, rec := startBroker(t, Config{URL: srv.URL()})
	const ch = "h:wire"
	must(t, subscribe(t, b, ch))
	must(t, subscribe(t, plain, ch))
	raw := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan string, 10)
	dc, release := raw.Dedicate()
	defer release()
	dc.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: func(m rueidis.PubSubMessage) { got <- m.Message }})
	must(t, dc.Do(ctx, dc.B().Subscribe().Channel(ch).Build()).Error())

	data := " {\"x\":[1,2]}\n"
	must(t, publish(t, b, ch, data))
	if m := <-got; m != data {
		t.Fatalf("plain payload on the wire %q, published %q", m, data)
	}
	pos := publishHist(t, b, ch, `"h"`, histKeep)
	if m, want := <-got, "!1:"+pos.Epoch+`:"h"`; m != want {
		t.Fatalf("history payload %q, want %q", m, want)
	}
	dropped := b.Stats().DroppedMessages
	must(t, raw.Do(ctx, raw.B().Publish().Channel(ch).Message("!x:y").Build()).Error())
	must(t, publish(t, b, ch, `"last"`))
	eventually(t, 2*time.Second, func() bool { return len(sink.plainMsgs(ch)) == 2 && len(rec.get(ch)) == 3 }, "deliveries")
	if p := sink.plainMsgs(ch); p[0] != data || p[1] != `"last"` || b.Stats().DroppedMessages != dropped+1 {
		t.Fatalf("plain deliveries %q, dropped %d", p, b.Stats().DroppedMessages-dropped)
	}
	if m := sink.msgs(ch); len(m) != 1 || m[0] != (histMsg{pos, `"h"`}) {
		t.Fatalf("history deliveries %+v", m)
	}
	if r := rec.get(ch); r[0] != data || r[1] != `"h"` || r[2] != `"last"` {
		t.Fatalf("a plain Sink got %q", r)
	}
}
