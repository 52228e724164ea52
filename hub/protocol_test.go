package hub

import (
	"encoding/json"
	"strings"
	"testing"
)

// protoFixture drives a hub through OnText with fake connections.
type protoFixture struct {
	t     *testing.T
	h     *Hub
	b     *fakeBroker
	loops []*queueLoop
}

func newProto(t *testing.T, cfg Config) *protoFixture {
	b := newFakeBroker()
	h, loops := testHub(t, b, 2, cfg)
	return &protoFixture{t: t, h: h, b: b, loops: loops}
}

func (p *protoFixture) open(loop int) *fakeConn {
	c := &fakeConn{id: uint64(loop), loop: loop}
	p.h.OnOpen(c)
	return c
}

// send runs one command and lets the loops run what it posted.
func (p *protoFixture) send(c *fakeConn, msg string) {
	p.h.OnText(c, []byte(msg))
	runAll(p.loops)
}

// expect checks that c received exactly the given frames, byte for byte.
func (p *protoFixture) expect(c *fakeConn, want ...string) {
	p.t.Helper()
	got := c.take()
	if len(got) != len(want) {
		p.t.Fatalf("got %d frames %q, want %q", len(got), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			p.t.Fatalf("frame %d\n got %s\nwant %s", i, got[i], want[i])
		}
		if !json.Valid([]byte(got[i])) {
			p.t.Fatalf("frame %d is not valid JSON: %s", i, got[i])
		}
	}
}

func TestProtocolErrors(t *testing.T) {
	long := strings.Repeat("c", 256)
	cases := []struct {
		name, msg string
		code      int
		withID    bool   // the reply carries "id":7
		contains  string // part of the message
	}{
		{"malformed JSON", `{"op":"subscribe",`, 400, false, "malformed JSON"},
		{"empty message", ``, 400, false, "malformed JSON"},
		{"garbage after object", `{"op":"ping","id":7} x`, 400, false, "unexpected data after"},
		{"bad escape", `{"op":"ping","x":"\q","id":7}`, 400, false, "invalid escape"},
		{"control char in string", "{\"op\":\"ping\",\"x\":\"a\x01\"}", 400, false, "control character"},
		{"leading zero number", `{"op":"ping","x":01}`, 400, false, "malformed JSON"},
		{"not an object", `[1,2]`, 400, false, "must be a JSON object"},
		{"string command", `"ping"`, 400, false, "must be a JSON object"},
		{"unknown op", `{"op":"jump","id":7}`, 400, true, `unknown op \"jump\"`},
		{"missing op", `{"id":7}`, 400, true, "missing op"},
		{"op not a string", `{"op":1,"id":7}`, 400, true, "op must be a string"},
		{"missing channel", `{"op":"subscribe","id":7}`, 400, true, "missing channel"},
		{"channel wrong type", `{"op":"subscribe","channel":5,"id":7}`, 400, true, "channel must be a string"},
		{"negative id", `{"op":"ping","id":-1}`, 400, false, "id must be a non-negative integer"},
		{"fractional id", `{"op":"ping","id":1.5}`, 400, false, "id must be"},
		{"exponent id", `{"op":"ping","id":1e2}`, 400, false, "id must be"},
		{"string id", `{"op":"ping","id":"7"}`, 400, false, "id must be"},
		{"id over uint64", `{"op":"ping","id":18446744073709551616}`, 400, false, "id must be"},
		{"publish without data", `{"op":"publish","channel":"a","id":7}`, 400, true, "missing data"},
		{"since wrong type", `{"op":"subscribe","channel":"a","since":{},"id":7}`, 400, true, "since must be"},
		{"since negative", `{"op":"subscribe","channel":"a","since":-1,"id":7}`, 400, true, "since must be"},
		{"since fractional", `{"op":"subscribe","channel":"a","since":1.5,"id":7}`, 400, true, "since must be"},
		{"since a string", `{"op":"subscribe","channel":"a","since":"3","id":7}`, 400, true, "since must be"},
		{"since null", `{"op":"subscribe","channel":"a","since":null,"id":7}`, 400, true, "since must be"},
		{"since 2^53", `{"op":"subscribe","channel":"a","since":9007199254740992,"id":7}`, 400, true, "since must be"},
		{"epoch not a string", `{"op":"subscribe","channel":"a","since":1,"epoch":5,"id":7}`, 400, true, "epoch must be a string"},
		{"unsubscribe not subscribed", `{"op":"unsubscribe","channel":"nope","id":7}`, 404, true, "not subscribed"},
		{"data over the limit", `{"op":"publish","channel":"a","data":"` + strings.Repeat("x", 100) + `","id":7}`, 413, true, "publish limit of 64 bytes"},
		{"bad channel character", `{"op":"subscribe","channel":"no spaces","id":7}`, 422, true, `invalid character ' ' at byte 2`},
		{"bad channel unicode", `{"op":"publish","channel":"caf\u00e9","data":1,"id":7}`, 422, true, `invalid character 'é' at byte 3`},
		{"empty channel", `{"op":"subscribe","channel":"","id":7}`, 422, true, "empty"},
		{"channel too long", `{"op":"unsubscribe","channel":"` + long + `","id":7}`, 422, true, "longer than 255"},
	}
	p := newProto(t, Config{MaxPublish: 64})
	c := p.open(0)
	for _, tc := range cases {
		p.send(c, tc.msg)
		got := c.takeJSON(t)
		if len(got) != 1 {
			t.Fatalf("%s: %d replies %v, want one error", tc.name, len(got), got)
		}
		m := got[0]
		if m["op"] != "error" || m["code"] != float64(tc.code) {
			t.Fatalf("%s: got %v, want error %d", tc.name, m, tc.code)
		}
		id, has := m["id"]
		if has != tc.withID || (has && id != 7.0) {
			t.Fatalf("%s: id %v (present %v), want present %v", tc.name, id, has, tc.withID)
		}
		msg, _ := m["message"].(string)
		raw, _ := json.Marshal(msg)
		if !strings.Contains(string(raw), tc.contains) {
			t.Fatalf("%s: message %s does not say %q", tc.name, raw, tc.contains)
		}
	}
	if c.data == nil {
		t.Fatal("errors must not drop the connection's state")
	}
}

func TestProtocolRepliesAndIDs(t *testing.T) {
	p := newProto(t, Config{})
	c := p.open(0)
	p.send(c, `{"op":"ping","id":5}`)
	p.expect(c, `{"op":"pong","id":5}`)
	p.send(c, ` {"op":"ping"} `)
	p.expect(c, `{"op":"pong"}`)
	p.send(c, `{"id":18446744073709551615,"op":"ping","extra":[{"a":null},true,-0.5e+3]}`)
	p.expect(c, `{"op":"pong","id":18446744073709551615}`)

	// Success without id is silent; failure without id still answers.
	p.send(c, `{"op":"subscribe","channel":"quiet"}`)
	p.expect(c)
	p.send(c, `{"op":"subscribe","channel":"bad name"}`)
	p.expect(c, `{"op":"error","code":422,"message":"channel name has invalid character ' ' at byte 3"}`)

	p.send(c, `{"op":"subscribe","channel":"room:42","id":1}`)
	p.expect(c, `{"op":"ok","id":1}`)
	p.send(c, `{"op":"subscribe","channel":"room:42","id":2}`)
	p.expect(c, `{"op":"ok","id":2}`) // already subscribed: still one answer
	p.send(c, `{"op":"subscribe","channel":"hist","since":17,"id":3}`)
	p.expect(c, `{"op":"ok","id":3,"recovered":false}`)
	p.send(c, `{"op":"subscribe","channel":"hist2","since":"1-0","id":4}`)
	p.expect(c, `{"op":"error","id":4,"code":400,"message":"since must be an offset: an integer from 0 to 2^53-1"}`)

	// Publish: data byte for byte, the publisher included when subscribed.
	data := `{"text": "hi ✓",  "n":[1, 2.50, null], "s":"q\"\\u00e9"}`
	p.send(c, `{"op":"publish","channel":"room:42","data":`+data+`,"id":9}`)
	// PROTOCOL.md leaves the order of the message and the ok open; here the
	// ok is immediate and the message comes through the loop's inbox.
	p.expect(c, `{"op":"ok","id":9}`, `{"op":"message","channel":"room:42","data":`+data+`}`)
	p.send(c, `{"op":"publish","channel":"room:42","data":"x"}`)
	p.expect(c, `{"op":"message","channel":"room:42","data":"x"}`)

	// An escaped channel name is its decoded value.
	p.send(c, `{"op":"unsubscribe","channel":"room\u003a42","id":10}`)
	p.expect(c, `{"op":"ok","id":10}`)
	p.send(c, `{"op":"publish","channel":"room:42","data":1}`)
	p.expect(c)
	p.send(c, `{"op":"unsubscribe","channel":"room:42","id":11}`)
	p.expect(c, `{"op":"error","id":11,"code":404,"message":"not subscribed to this channel"}`)

	// A 255-byte name of every allowed character is valid.
	name := strings.Repeat("Az09_-.:@/=", 24)[:255]
	p.send(c, `{"op":"subscribe","channel":"`+name+`","id":12}`)
	p.expect(c, `{"op":"ok","id":12}`)
}

func TestProtocolErrorMessagesAreEscaped(t *testing.T) {
	p := newProto(t, Config{})
	c := p.open(0)
	p.send(c, `{"op":"a\"b\\\u0001\u2028","id":1}`)
	got := c.takeJSON(t)
	if len(got) != 1 || got[0]["message"] != `unknown op "a\"b\\\x01\u2028"` {
		t.Fatalf("got %v", got)
	}
}

func TestSubscribeOKWaitsForBroker(t *testing.T) {
	p := newProto(t, Config{})
	p.b.hold = true
	a, b := p.open(0), p.open(1)
	p.send(a, `{"op":"subscribe","channel":"x","id":1}`)
	p.send(b, `{"op":"subscribe","channel":"x","id":2}`)
	p.send(b, `{"op":"subscribe","channel":"y"}`)
	p.expect(a)
	p.expect(b)
	// Nothing is delivered to a subscriber before its ok.
	p.send(b, `{"op":"publish","channel":"x","data":0,"id":3}`)
	p.expect(a)
	p.expect(b, `{"op":"ok","id":3}`)

	p.b.fire(t, "x", nil)
	runAll(p.loops)
	p.expect(a, `{"op":"ok","id":1}`)
	p.expect(b, `{"op":"ok","id":2}`)
	c := p.open(1)
	p.send(c, `{"op":"subscribe","channel":"x","id":4}`)
	p.expect(c, `{"op":"ok","id":4}`) // channel already confirmed: at once

	p.send(b, `{"op":"publish","channel":"x","data":1}`)
	for _, cn := range []*fakeConn{a, b, c} {
		p.expect(cn, `{"op":"message","channel":"x","data":1}`)
	}

	// Failure: waiting subscribers get 503, with and without id, and are removed.
	d := p.open(0)
	p.send(d, `{"op":"subscribe","channel":"z","id":5}`)
	p.send(a, `{"op":"subscribe","channel":"z"}`)
	p.b.takeCalls()
	p.b.fire(t, "z", ErrUnavailable)
	runAll(p.loops)
	p.expect(d, `{"op":"error","id":5,"code":503,"message":"broker unavailable, retry later"}`)
	p.expect(a, `{"op":"error","code":503,"message":"broker unavailable, retry later"}`)
	if calls := p.b.takeCalls(); len(calls) != 1 || calls[0] != "unsub z" {
		t.Fatalf("after failure broker calls %v, want one Unsubscribe", calls)
	}
	p.send(d, `{"op":"unsubscribe","channel":"z","id":6}`)
	p.expect(d, `{"op":"error","id":6,"code":404,"message":"not subscribed to this channel"}`)

	// A subscribe cancelled before its confirmation still gets its one answer.
	p.send(d, `{"op":"subscribe","channel":"w","id":7}`)
	p.send(d, `{"op":"unsubscribe","channel":"w","id":8}`)
	p.expect(d, `{"op":"ok","id":7}`, `{"op":"ok","id":8}`)
	p.b.fire(t, "w", nil)
	runAll(p.loops)
	p.expect(d)
}

func TestPublishBrokerUnavailable(t *testing.T) {
	p := newProto(t, Config{})
	c := p.open(1)
	p.b.pubErr = ErrUnavailable
	p.send(c, `{"op":"publish","channel":"x","data":1,"id":1}`)
	p.expect(c, `{"op":"error","id":1,"code":503,"message":"broker unavailable, retry later"}`)
	p.send(c, `{"op":"publish","channel":"x","data":1}`)
	p.expect(c, `{"op":"error","code":503,"message":"broker unavailable, retry later"}`)
}

// asyncPubBroker confirms publishes later, from another goroutine.
type asyncPubBroker struct {
	*fakeBroker
	dones chan func(error)
}

func (b *asyncPubBroker) Publish(ch string, data []byte, done func(error)) { b.dones <- done }

func TestPublishAnswerPostedToLoop(t *testing.T) {
	b := &asyncPubBroker{fakeBroker: newFakeBroker(), dones: make(chan func(error), 4)}
	h, loops := testHub(t, b, 2, Config{})
	c := &fakeConn{loop: 1}
	h.OnOpen(c)
	h.OnText(c, []byte(`{"op":"publish","channel":"x","data":1,"id":1}`))
	gone := &fakeConn{loop: 1}
	h.OnOpen(gone)
	h.OnText(gone, []byte(`{"op":"publish","channel":"x","data":2,"id":2}`))
	h.OnClose(gone)
	if len(c.take()) != 0 {
		t.Fatal("answered before the broker's done")
	}
	fired := make(chan struct{})
	go func() {
		(<-b.dones)(nil)
		(<-b.dones)(nil)
		close(fired)
	}()
	<-fired
	runAll(loops)
	if got := c.take(); len(got) != 1 || got[0] != `{"op":"ok","id":1}` {
		t.Fatalf("publisher got %q", got)
	}
	if got := gone.take(); len(got) != 0 {
		t.Fatalf("closed publisher got %q", got)
	}
	if n := len(h.loops[1].freePub); n != 2 {
		t.Fatalf("%d publish records recycled, want 2", n)
	}
}

// A broker that refuses a Subscribe inside the call (it knows it is down).
func TestSubscribeFailsSynchronously(t *testing.T) {
	p := newProto(t, Config{})
	p.b.subErr = ErrUnavailable
	c := p.open(1)
	p.send(c, `{"op":"subscribe","channel":"x","id":1}`)
	p.expect(c, `{"op":"error","id":1,"code":503,"message":"broker unavailable, retry later"}`)
	if calls := p.b.takeCalls(); len(calls) != 2 || calls[0] != "sub x" || calls[1] != "unsub x" {
		t.Fatalf("broker calls %v", calls)
	}
	if err := checkSubTable(p.h.table); err != nil || p.h.table.channels.Load() != 0 {
		t.Fatalf("subscription table after failure: %v, %d channels", err, p.h.table.channels.Load())
	}
	p.b.subErr = nil
	p.send(c, `{"op":"subscribe","channel":"x","id":2}`)
	p.expect(c, `{"op":"ok","id":2}`)
}

// A subscribe repeated while the first one on the same connection still
// waits for the broker is answered with it: ok only once the broker
// confirmed, 503 when it failed (never an early ok that a failure belies).
func TestRepeatedSubscribeWaitsForFirst(t *testing.T) {
	p := newProto(t, Config{})
	p.b.hold = true
	a := p.open(0)
	const unavailable = `"code":503,"message":"broker unavailable, retry later"}`

	// Failure: both ids get 503, the channel is not held afterwards.
	p.send(a, `{"op":"subscribe","channel":"x","id":1}`)
	p.send(a, `{"op":"subscribe","channel":"x","id":2}`)
	p.send(a, `{"op":"subscribe","channel":"x"}`)
	p.expect(a)
	p.b.fire(t, "x", ErrUnavailable)
	runAll(p.loops)
	p.expect(a, `{"op":"error","id":1,`+unavailable, `{"op":"error","id":2,`+unavailable, `{"op":"error",`+unavailable)
	p.send(a, `{"op":"unsubscribe","channel":"x","id":3}`)
	p.expect(a, `{"op":"error","id":3,"code":404,"message":"not subscribed to this channel"}`)

	// Success: every id gets its ok (with since: recovered false), once.
	p.send(a, `{"op":"subscribe","channel":"y","id":4}`)
	p.send(a, `{"op":"subscribe","channel":"y","id":5,"since":0}`)
	p.send(a, `{"op":"subscribe","channel":"y"}`)
	p.expect(a)
	p.b.fire(t, "y", nil)
	runAll(p.loops)
	p.expect(a, `{"op":"ok","id":4}`, `{"op":"ok","id":5,"recovered":false}`)
	p.send(a, `{"op":"subscribe","channel":"y","id":6}`) // confirmed: at once
	p.expect(a, `{"op":"ok","id":6}`)

	// Unsubscribe before the broker answered supersedes every waiting id.
	p.send(a, `{"op":"subscribe","channel":"w","id":7}`)
	p.send(a, `{"op":"subscribe","channel":"w","id":8}`)
	p.send(a, `{"op":"unsubscribe","channel":"w","id":9}`)
	p.expect(a, `{"op":"ok","id":7}`, `{"op":"ok","id":8}`, `{"op":"ok","id":9}`)
	p.b.fire(t, "w", nil)
	runAll(p.loops)
	p.expect(a)

	// Closing while ids wait answers nothing and leaves nothing behind.
	p.send(a, `{"op":"subscribe","channel":"v","id":10}`)
	p.send(a, `{"op":"subscribe","channel":"v","id":11}`)
	p.h.OnClose(a)
	p.b.fire(t, "v", nil)
	runAll(p.loops)
	p.expect(a)
	if err := checkSubTable(p.h.table); err != nil {
		t.Fatal(err)
	}
	if n := p.h.table.members.Load(); n != 0 {
		t.Fatalf("%d subscriptions left after close", n)
	}
	if n := len(p.h.table.dups[0]); n != 0 {
		t.Fatalf("%d members still hold repeats after close", n)
	}

	// The repeats one pending member holds are bounded.
	c := p.open(0)
	p.send(c, `{"op":"subscribe","channel":"u","id":1}`)
	for i := 0; i < maxDups; i++ {
		p.send(c, `{"op":"subscribe","channel":"u","id":2}`)
	}
	p.expect(c)
	p.send(c, `{"op":"subscribe","channel":"u","id":3}`)
	got := c.takeJSON(t)
	if len(got) != 1 || got[0]["code"] != 429.0 || got[0]["id"] != 3.0 {
		t.Fatalf("repeat beyond the bound: got %v, want error 429 with id 3", got)
	}
	p.b.fire(t, "u", nil)
	runAll(p.loops)
	if got := c.take(); len(got) != 1+maxDups {
		t.Fatalf("%d answers, want %d", len(got), 1+maxDups)
	}
}

// A connection holds at most MaxSubscriptions channels: one more gets 429,
// the connection stays usable, and an unsubscribe frees a slot.
func TestMaxSubscriptions(t *testing.T) {
	if h, _ := testHub(t, newFakeBroker(), 1, Config{}); h.cfg.MaxSubscriptions != 1024 {
		t.Fatalf("default MaxSubscriptions %d, want 1024", h.cfg.MaxSubscriptions)
	}
	p := newProto(t, Config{MaxSubscriptions: 3})
	c := p.open(0)
	for _, ch := range []string{"a", "b", "c"} {
		p.send(c, `{"op":"subscribe","channel":"`+ch+`","id":1}`)
		p.expect(c, `{"op":"ok","id":1}`)
	}
	const full = `"code":429,"message":"too many subscriptions on this connection (limit 3)"}`
	p.send(c, `{"op":"subscribe","channel":"d","id":4}`)
	p.expect(c, `{"op":"error","id":4,`+full)
	p.send(c, `{"op":"subscribe","channel":"d"}`)
	p.expect(c, `{"op":"error",`+full)
	p.send(c, `{"op":"subscribe","channel":"a","id":5}`) // held already: no new slot
	p.expect(c, `{"op":"ok","id":5}`)
	p.send(c, `{"op":"ping","id":6}`)
	p.expect(c, `{"op":"pong","id":6}`)
	if n := p.h.table.members.Load(); n != 3 {
		t.Fatalf("%d subscriptions, want 3", n)
	}

	p.send(c, `{"op":"unsubscribe","channel":"a","id":7}`)
	p.expect(c, `{"op":"ok","id":7}`)
	p.send(c, `{"op":"subscribe","channel":"d","id":8}`)
	p.expect(c, `{"op":"ok","id":8}`)
	p.send(c, `{"op":"publish","channel":"d","data":1}`)
	p.expect(c, `{"op":"message","channel":"d","data":1}`)
	// The limit is per connection.
	o := p.open(1)
	p.send(o, `{"op":"subscribe","channel":"e","id":9}`)
	p.expect(o, `{"op":"ok","id":9}`)
}
