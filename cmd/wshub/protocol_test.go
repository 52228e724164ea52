package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestPubSubRoundTrip(t *testing.T) {
	g := startGateway(t)
	sub := dial(t, g.addr)
	pub := dial(t, g.addr)

	sub.sendText(`{"op":"subscribe","channel":"room:42","id":1}`)
	if m := sub.next(); m["op"] != "ok" || m["id"] != 1.0 {
		t.Fatalf("subscribe reply %v", m)
	}
	// data must arrive byte for byte, including odd spacing and unicode.
	data := `{"text": "hi ✓",  "n":[1, 2.50, null]}`
	pub.sendText(`{"op":"publish","channel":"room:42","data":` + data + `,"id":2}`)
	if m := pub.next(); m["op"] != "ok" || m["id"] != 2.0 {
		t.Fatalf("publish reply %v", m)
	}
	f, err := sub.ReadFrame(5e9)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"op":"message","channel":"room:42","data":` + data + `}`
	if string(f.Payload) != want {
		t.Fatalf("message\n got %s\nwant %s", f.Payload, want)
	}

	// HTTP publish reaches the same subscriber.
	if code, body := g.post("/api/publish", `{"channel":"room:42","data":"from http"}`); code != 200 || !strings.Contains(body, `"ok":true`) {
		t.Fatalf("POST /api/publish: %d %s", code, body)
	}
	if m := sub.next(); m["op"] != "message" || m["data"] != "from http" {
		t.Fatalf("http publication %v", m)
	}

	// After unsubscribe nothing more arrives; ping is answered in order.
	sub.sendText(`{"op":"unsubscribe","channel":"room:42","id":3}`)
	if m := sub.next(); m["op"] != "ok" || m["id"] != 3.0 {
		t.Fatalf("unsubscribe reply %v", m)
	}
	pub.sendText(`{"op":"publish","channel":"room:42","data":1,"id":4}`)
	pub.next()
	sub.sendText(`{"op":"ping","id":5}`)
	if m := sub.next(); m["op"] != "pong" || m["id"] != 5.0 {
		t.Fatalf("expected only the pong after unsubscribing, got %v", m)
	}
}

func TestOrderAcrossSubscribersAndLoops(t *testing.T) {
	g := startGateway(t, "--loops", "4")
	const subs, msgs = 8, 200
	var cls []*client
	for i := 0; i < subs; i++ {
		c := dial(t, g.addr)
		c.sendText(`{"op":"subscribe","channel":"feed","id":1}`)
		if m := c.next(); m["op"] != "ok" {
			t.Fatalf("subscribe: %v", m)
		}
		cls = append(cls, c)
	}
	pubs := []*client{dial(t, g.addr), dial(t, g.addr)}
	for i := 0; i < msgs; i++ {
		pubs[i%2].sendText(fmt.Sprintf(`{"op":"publish","channel":"feed","data":%d}`, i))
	}
	var first []float64
	for i, c := range cls {
		var got []float64
		for len(got) < msgs {
			m := c.next()
			got = append(got, m["data"].(float64))
		}
		if i == 0 {
			first = got
			continue
		}
		for j := range got {
			if got[j] != first[j] {
				t.Fatalf("subscriber %d saw message %d as %v, subscriber 0 as %v", i, j, got[j], first[j])
			}
		}
	}
}

func TestErrorCodesKeepConnectionOpen(t *testing.T) {
	g := startGateway(t, "--max-publish", "64")
	c := dial(t, g.addr)
	cases := []struct {
		name, cmd string
		code      float64
	}{
		{"malformed JSON", `{"op":"subscribe",`, 400},
		{"not an object", `[1,2]`, 400},
		{"unknown op", `{"op":"jump","id":7}`, 400},
		{"missing channel", `{"op":"subscribe","id":7}`, 400},
		{"channel wrong type", `{"op":"subscribe","channel":5,"id":7}`, 400},
		{"negative id", `{"op":"ping","id":-1}`, 400},
		{"publish without data", `{"op":"publish","channel":"a","id":7}`, 400},
		{"unsubscribe not subscribed", `{"op":"unsubscribe","channel":"nope","id":7}`, 404},
		{"data over the publish limit", `{"op":"publish","channel":"a","data":"` + strings.Repeat("x", 100) + `","id":7}`, 413},
		{"bad channel character", `{"op":"subscribe","channel":"no spaces","id":7}`, 422},
		{"empty channel", `{"op":"subscribe","channel":"","id":7}`, 422},
		{"channel too long", `{"op":"subscribe","channel":"` + strings.Repeat("c", 256) + `","id":7}`, 422},
	}
	for _, tc := range cases {
		c.sendText(tc.cmd)
		m := c.next()
		if m["op"] != "error" || m["code"] != tc.code {
			t.Fatalf("%s: got %v, want error %v", tc.name, m, tc.code)
		}
		if msg, _ := m["message"].(string); msg == "" {
			t.Fatalf("%s: error without a message: %v", tc.name, m)
		}
		if id, has := m["id"]; has && id != 7.0 {
			t.Fatalf("%s: error carries id %v", tc.name, id)
		}
	}
	// Without an id success is silent and failure still answers.
	c.sendText(`{"op":"subscribe","channel":"quiet"}`)
	c.sendText(`{"op":"subscribe","channel":"bad name"}`)
	if m := c.next(); m["op"] != "error" || m["code"] != 422.0 || m["id"] != nil {
		t.Fatalf("error without id: %v", m)
	}
	// The connection is still fully usable.
	c.sendText(`{"op":"publish","channel":"quiet","data":"still here"}`)
	if m := c.next(); m["op"] != "message" || m["data"] != "still here" {
		t.Fatalf("after errors: %v", m)
	}
	// 255 bytes of every allowed character is a valid name.
	name := strings.Repeat("Az09_-.:@/=", 24)[:255]
	c.sendText(`{"op":"subscribe","channel":"` + name + `","id":8}`)
	if m := c.next(); m["op"] != "ok" {
		t.Fatalf("valid 255-byte channel: %v", m)
	}
}

func TestHTTPAPIErrors(t *testing.T) {
	g := startGateway(t, "--max-publish", "16")
	for _, tc := range []struct {
		body string
		code int
	}{
		{`{"channel":"a"`, 400},
		{`{"channel":"a"}`, 400},
		{`{"channel":"bad name","data":1}`, 422},
		{`{"channel":"a","data":"` + strings.Repeat("x", 40) + `"}`, 413},
	} {
		if code, body := g.post("/api/publish", tc.body); code != tc.code {
			t.Fatalf("POST %s: %d %s, want %d", tc.body, code, body, tc.code)
		}
	}
	if code, _ := g.get("/readyz"); code != 200 {
		t.Fatalf("/readyz %d", code)
	}
	code, body := g.get("/metrics")
	if code != 200 || !strings.Contains(body, "wshub_") {
		t.Fatalf("/metrics %d without wshub_ series", code)
	}
}

func TestPprofOnlyWhenAsked(t *testing.T) {
	if code, _ := startGateway(t).get("/debug/pprof/"); code != 404 {
		t.Fatalf("/debug/pprof/ without --pprof: %d", code)
	}
	if code, body := startGateway(t, "--pprof").get("/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("/debug/pprof/ with --pprof: %d", code)
	}
}

// By default a publish whose data is under --max-publish always fits in one
// client message: the limit leaves room for the command around the data.
func TestDefaultPublishLimitAnswers413NotClose(t *testing.T) {
	g := startGateway(t, "--max-message", "2048")
	c := dial(t, g.addr)
	c.sendText(`{"op":"publish","channel":"a","data":"` + strings.Repeat("x", 1500) + `","id":1}`)
	if m := c.next(); m["op"] != "error" || m["code"] != 413.0 || m["id"] != 1.0 {
		t.Fatalf("publish over the default limit: %v", m)
	}
	c.sendText(`{"op":"publish","channel":"a","data":"` + strings.Repeat("x", 900) + `","id":2}`)
	if m := c.next(); m["op"] != "ok" || m["id"] != 2.0 {
		t.Fatalf("publish under the default limit: %v", m)
	}
}

// --max-subscriptions caps the channels of one connection: one more is
// answered 429 with the connection open, and a freed slot can be reused.
// Replies are matched by id: an ok waits for the broker, an error does not.
func TestMaxSubscriptionsFlag(t *testing.T) {
	g := startGateway(t, "--max-subscriptions", "2")
	c := dial(t, g.addr)
	replies := func(n int) map[float64]map[string]any {
		got := map[float64]map[string]any{}
		for len(got) < n {
			m := c.next()
			got[m["id"].(float64)] = m
		}
		return got
	}
	for i, ch := range []string{"a", "b", "c"} {
		c.sendText(fmt.Sprintf(`{"op":"subscribe","channel":%q,"id":%d}`, ch, i+1))
	}
	got := replies(3)
	if got[1]["op"] != "ok" || got[2]["op"] != "ok" || got[3]["op"] != "error" || got[3]["code"] != 429.0 {
		t.Fatalf("subscribes over a limit of 2: %v", got)
	}
	c.sendText(`{"op":"unsubscribe","channel":"a","id":4}`)
	if m := c.next(); m["op"] != "ok" || m["id"] != 4.0 {
		t.Fatalf("unsubscribe: %v", m)
	}
	c.sendText(`{"op":"subscribe","channel":"c","id":5}`)
	if m := c.next(); m["op"] != "ok" || m["id"] != 5.0 {
		t.Fatalf("subscribe into the freed slot: %v", m)
	}
}
