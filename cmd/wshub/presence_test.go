package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// presenceConfig: chat:* channels track members and announce joins and
// leaves, a leave waiting 1s for its user to come back.
const presenceConfig = `
auth:
  jwt_secret: [` + testSecret + `]
namespaces:
  chat: {subscribe: authenticated, presence: true, join_leave: true, join_leave_linger: 1s}
`

// TestPresenceEndToEnd: two clients with info claims see each other in
// presence, presence_stats and the admin API; a leave comes after the
// linger, and a fast reconnect is not announced at all.
func TestPresenceEndToEnd(t *testing.T) {
	g := startGateway(t, "--config", writeConfig(t, presenceConfig))
	connect := func(user string) *client {
		return dialPath(t, g.addr, "/ws?token="+mint(t, jwt.MapClaims{"sub": user, "info": map[string]any{"name": strings.ToUpper(user[:1]) + user[1:]}}))
	}
	connID := func(c *client) string {
		c.sendText(`{"op":"info","id":99}`)
		return c.next()["conn"].(string)
	}
	alice, bob := connect("alice"), connect("bob")
	aliceID, bobID := connID(alice), connID(bob)
	expectReply(t, alice, `{"op":"subscribe","channel":"chat:room","id":1}`, 0)
	if m := alice.next(); fmt.Sprint(m) != "map[channel:chat:room conn:"+aliceID+" op:join user:alice]" {
		t.Fatalf("alice's own join: %v", m)
	}
	expectReply(t, bob, `{"op":"subscribe","channel":"chat:room","id":1}`, 0)
	if m := alice.next(); fmt.Sprint(m) != "map[channel:chat:room conn:"+bobID+" op:join user:bob]" {
		t.Fatalf("bob's join at alice: %v", m)
	}
	bob.next() // his own join

	bob.sendText(`{"op":"presence","channel":"chat:room","id":2}`)
	var got []string
	for _, m := range bob.next()["members"].([]any) {
		got = append(got, fmt.Sprint(m))
	}
	slices.Sort(got)
	want := []string{"map[conn:" + aliceID + " info:map[name:Alice] user:alice]", "map[conn:" + bobID + " info:map[name:Bob] user:bob]"}
	if !slices.Equal(got, want) {
		t.Fatalf("members %v, want %v", got, want)
	}
	bob.sendText(`{"op":"presence_stats","channel":"chat:room","id":3}`)
	if m := bob.next(); fmt.Sprint(m) != "map[conns:2 id:3 op:ok users:2]" {
		t.Fatalf("stats %v", m)
	}
	if code, body := g.get("/api/presence/chat:room/stats"); code != 200 || strings.TrimSpace(body) != `{"conns":2,"users":2}` {
		t.Fatalf("admin stats: %d %s", code, body)
	}
	if code, body := g.get("/api/presence/chat:room"); code != 200 || !strings.Contains(body, `"info":{"name":"Alice"}`) {
		t.Fatalf("admin members: %d %s", code, body)
	}
	if code, _ := g.get("/api/presence/lobby"); code != 404 {
		t.Fatalf("admin, channel without presence: %d", code)
	}
	expectReply(t, alice, `{"op":"presence","channel":"lobby","id":4}`, 404)

	// A fast reconnect: bob's leave is held (once the gateway has seen
	// the close), his new join cancels it.
	bob.Conn.Close()
	waitMetric(t, g, "wshub_hub_presence_held_leaves", 1)
	bob = connect("bob")
	expectReply(t, bob, `{"op":"subscribe","channel":"chat:room","id":1}`, 0)
	waitMetric(t, g, `wshub_hub_presence_events_total{outcome="suppressed"}`, 2)
	waitMetric(t, g, "wshub_hub_presence_held_leaves", 0)
	// Nothing was sent: alice's next frame is her pong.
	alice.sendText(`{"op":"ping","id":5}`)
	if m := alice.next(); m["op"] != "pong" {
		t.Fatalf("after a fast reconnect alice got %v", m)
	}

	// A slow one: the leave comes after the linger.
	bobID = connID(bob)
	start := time.Now()
	bob.Conn.Close()
	if m := alice.next(); fmt.Sprint(m) != "map[channel:chat:room conn:"+bobID+" op:leave user:bob]" {
		t.Fatalf("bob's leave: %v", m)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("the leave came after %v, before the 1s linger", d)
	}
	alice.sendText(`{"op":"presence_stats","channel":"chat:room","id":6}`)
	if m := alice.next(); fmt.Sprint(m) != "map[conns:1 id:6 op:ok users:1]" {
		t.Fatalf("stats after bob left %v", m)
	}
}

// waitMetric polls /metrics until the sample that starts with series
// (a name, or a name and its first labels) is want.
func waitMetric(t *testing.T, g *gateway, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body := g.get("/metrics")
		var got string
		for _, line := range strings.Split(body, "\n") {
			if rest, ok := strings.CutPrefix(line, series); ok && rest != "" && (rest[0] == ' ' || rest[0] == ',' || rest[0] == '}' || rest[0] == '{') {
				f := strings.Fields(line)
				got = f[len(f)-1]
			}
		}
		if got == fmt.Sprint(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %q, want %v", series, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPresenceConfigErrors(t *testing.T) {
	expectConfigErrors(t, []configError{
		{"namespaces: {chat: {join_leave: true}}", "namespaces.chat.join_leave: needs presence: true"},
		{"namespaces: {chat: {presence: true, join_leave_linger: 2s}}", "namespaces.chat.join_leave_linger: needs join_leave: true"},
		{"namespaces: {chat: {presence: true, join_leave: true, join_leave_linger: 2h}}", "namespaces.chat.join_leave_linger: must be from 0"},
		{"namespaces: {chat: {presence: true, presence_for: token}}", `namespaces.chat.presence_for: "token" is not one of subscribers, authenticated, anyone, nobody`},
		{"namespaces: {chat: {presence_for: anyone}}", "namespaces.chat.presence_for: needs presence: true"},
		{"default_namespace: {join_leave: true}", "default_namespace.join_leave: needs presence: true"},
		{"redis: {url: 'redis://127.0.0.1:1', registry: false}\nnamespaces: {chat: {presence: true}}", "namespaces.chat.presence: needs the connection registry"},
	})
}

// TestConfigPrintPresenceRoundTrip: the presence keys print and read back.
func TestConfigPrintPresenceRoundTrip(t *testing.T) {
	orig := writeConfig(t, "namespaces:\n  chat: {presence: true, join_leave: true, join_leave_linger: 3s, presence_for: anyone}\n  seen: {presence: true}\n")
	code, first, errs := runWshub(t, "config", "print", "--config", orig)
	if code != 0 {
		t.Fatalf("config print: exit %d: %s", code, errs)
	}
	for _, line := range []string{
		"  chat:\n    presence: true\n    join_leave: true\n    join_leave_linger: 3s\n    presence_for: anyone\n",
		"  seen:\n    presence: true\n",
	} {
		if !strings.Contains(first, line) {
			t.Errorf("config print has no %q:\n%s", line, first)
		}
	}
	if code, again, errs := runWshub(t, "config", "print", "--config", writeConfig(t, first)); code != 0 || again != first {
		t.Fatalf("printed again: exit %d %s\n%s\nfirst:\n%s", code, errs, again, first)
	}
}
