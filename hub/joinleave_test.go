package hub

import (
	"fmt"
	"testing"
	"time"

	"github.com/wshub/wshub/hub/access"
	"github.com/wshub/wshub/hub/presence"
)

func TestEventPayloadRoundTrip(t *testing.T) {
	for _, c := range []struct {
		kind       byte
		conn, user string
	}{{evJoin, "local.1", "alice"}, {evLeave, "i-2.30", ""}, {evJoin, "x.1", "ü:7\"\n"}} {
		b := appendEvent(nil, c.kind, c.conn, c.user)
		k, conn, user, ok := parseEvent(b)
		if !ok || k != c.kind || conn != c.conn || user != c.user {
			t.Errorf("%q: %c %q %q %v", b, k, conn, user, ok)
		}
	}
	for _, bad := range []string{"", "~", "~j", "~x1:ab", "~j:ab", "~j9:ab", "~j1ab", "~j99999999999999999999999:a", "{}"} {
		if _, _, _, ok := parseEvent([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestJoinLeavePushes(t *testing.T) {
	f := newPresenceFixture(t, nil, Config{})
	watcher := f.connect("watcher", nil)
	f.send(watcher, `{"op":"subscribe","channel":"room:1","id":1}`)
	f.expect(watcher, `{"op":"ok","id":1}`, `{"op":"join","channel":"room:1","user":"watcher","conn":"local.101"}`)

	alice := f.connect("alice", map[string]any{"name": "Alice"})
	f.send(alice, `{"op":"subscribe","channel":"room:1","id":1}`)
	join := `{"op":"join","channel":"room:1","user":"alice","conn":"local.102"}`
	f.expect(watcher, join)
	f.expect(alice, `{"op":"ok","id":1}`, join)

	// A fast reconnect: the leave is held, the new connection's join drops
	// it, and neither goes out, now or later.
	f.h.OnClose(alice)
	runAll(f.loops)
	if n := f.h.joinLeave.heldLeaves(); n != 1 {
		t.Fatalf("held leaves %d, want 1", n)
	}
	f.advance(time.Second)
	alice = f.connect("alice", nil)
	f.send(alice, `{"op":"subscribe","channel":"room:1","id":2}`)
	if n := f.h.joinLeave.heldLeaves(); n != 0 || f.h.stats.eventsSuppressed.Load() != 2 {
		t.Fatalf("held %d, suppressed %d: want the pair dropped", n, f.h.stats.eventsSuppressed.Load())
	}
	f.advance(5 * time.Second)
	f.expect(watcher)
	f.expect(alice, `{"op":"ok","id":2}`)

	// A slow one: the leave goes out once the linger has passed, then the
	// join of the new connection.
	f.send(alice, `{"op":"unsubscribe","channel":"room:1","id":3}`)
	f.expect(alice, `{"op":"ok","id":3}`)
	f.advance(1900 * time.Millisecond)
	f.expect(watcher)
	f.advance(200 * time.Millisecond)
	f.expect(watcher, `{"op":"leave","channel":"room:1","user":"alice","conn":"local.103"}`)
	alice2 := f.connect("alice", nil)
	f.send(alice2, `{"op":"subscribe","channel":"room:1"}`)
	f.expect(watcher, `{"op":"join","channel":"room:1","user":"alice","conn":"local.104"}`)

	// Anonymous connections cannot be recognised when they come back:
	// their leaves go out at once.
	anon := f.connect("", nil)
	f.send(anon, `{"op":"subscribe","channel":"room:1"}`)
	f.send(anon, `{"op":"unsubscribe","channel":"room:1"}`)
	f.expect(watcher, `{"op":"join","channel":"room:1","user":"","conn":"local.105"}`,
		`{"op":"leave","channel":"room:1","user":"","conn":"local.105"}`)

	// A namespace without join_leave pushes nothing; a pending subscribe
	// that fails never joined, so it never leaves.
	f.send(alice2, `{"op":"subscribe","channel":"open:1"}`)
	f.h.OnClose(alice2)
	runAll(f.loops)
	f.b.hold = true
	late := f.connect("bob", nil)
	f.send(late, `{"op":"subscribe","channel":"room:2","id":9}`)
	f.b.fire(t, "room:2", ErrUnavailable)
	runAll(f.loops)
	f.expect(late, `{"op":"error","id":9,"code":503,"message":"broker unavailable, retry later"}`)
	f.advance(time.Minute)
	f.expect(watcher, `{"op":"leave","channel":"room:1","user":"alice","conn":"local.104"}`)
}

// TestJoinLeaveNotForgeable: a client cannot publish a payload that reads
// as a join (it is not JSON), and a malformed one is counted and dropped.
func TestJoinLeaveNotForgeable(t *testing.T) {
	f := newPresenceFixture(t, nil, Config{})
	c := f.connect("mallory", nil)
	f.send(c, `{"op":"subscribe","channel":"room:1"}`)
	c.take()
	f.send(c, `{"op":"publish","channel":"room:1","data":~j3:x.1bob,"id":1}`)
	if got := c.takeJSON(t); len(got) != 1 || got[0]["code"] != 400.0 {
		t.Fatalf("forged publish: %v", got)
	}
	f.h.Deliver("room:1", []byte("~jzz"))
	f.h.Deliver("plain:1", appendEvent(nil, evJoin, "x.1", "bob")) // no join_leave here
	runAll(f.loops)
	f.expect(c)
	if n := f.h.stats.eventsDropped.Load(); n != 2 {
		t.Fatalf("dropped %d, want 2", n)
	}
}

// TestJoinLeaveFromAnotherInstance: events published by another instance
// (here: delivered by the broker) are rendered, and the linger applies to
// them, whichever instance the user reconnects through.
func TestJoinLeaveFromAnotherInstance(t *testing.T) {
	f := newPresenceFixture(t, nil, Config{})
	w := f.connect("watcher", nil)
	f.send(w, `{"op":"subscribe","channel":"room:1"}`)
	w.take()
	f.h.Deliver("room:1", appendEvent(nil, evLeave, "other.7", "alice"))
	f.h.Deliver("room:1", appendEvent(nil, evJoin, "third.1", "alice")) // back through a third
	f.h.Deliver("room:1", appendEvent(nil, evJoin, "other.8", "bob"))
	f.advance(time.Minute)
	f.expect(w, `{"op":"join","channel":"room:1","user":"bob","conn":"other.8"}`)
	for i := range 3 {
		f.h.Deliver("room:1", appendEvent(nil, evLeave, fmt.Sprintf("other.%d", i), fmt.Sprintf("u%d", i)))
	}
	f.advance(3 * time.Second)
	if got := w.take(); len(got) != 3 {
		t.Fatalf("held leaves sent: %q", got)
	}
}

// TestJoinLeaveOnAHistoryChannel: joins and leaves are not stream
// publications: no offset, not replayed by a recovery, delivered to a
// member that is catching up, and the publications it replayed are still
// not delivered twice.
func TestJoinLeaveOnAHistoryChannel(t *testing.T) {
	p := newStreamProtoWith(t, access.Presence{On: true, JoinLeave: true}, 0, Config{Presence: presence.NewMemoryStore()})
	c := p.recoverAhead()
	// c joined when the broker confirmed, while its read was out: it missed
	// its own join. d's join comes to c while c is still catching up.
	d := p.open(1)
	p.send(d, `{"op":"subscribe","channel":"hist:a","id":2}`)
	p.answerReads()
	p.expect(d, `{"op":"ok","id":2,"offset":4,"epoch":"e1"}`)
	p.expect(c, `{"op":"join","channel":"hist:a","user":"","conn":"local.1"}`)
	p.flushSkipsReplayed(c)
}
