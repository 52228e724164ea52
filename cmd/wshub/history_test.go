package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// historyConfig is the example: every hist:* channel keeps history.
const historyConfig = "namespaces: {hist: {history_size: 1000, history_ttl: 10m}}\n"

// TestHistoryRecoveryEndToEnd: a client drops off, publications go on, it
// comes back with since and gets exactly what it missed, then live ones.
func TestHistoryRecoveryEndToEnd(t *testing.T) {
	g := startGateway(t, "--config", writeConfig(t, historyConfig))
	a := dial(t, g.addr)
	a.sendText(`{"op":"subscribe","channel":"hist:room","id":1}`)
	// Nothing published yet: no stream, so no epoch either.
	if ok := a.next(); fmt.Sprint(ok) != "map[epoch: id:1 offset:0 op:ok]" {
		t.Fatalf("subscribe ok %v: want offset 0 and epoch \"\"", ok)
	}
	var first string // the stream's epoch, which its first publication carries
	for i := 1; i <= 3; i++ {
		if code, body := g.post("/api/publish", fmt.Sprintf(`{"channel":"hist:room","data":{"n":%d}}`, i)); code != 200 || body != fmt.Sprintf(`{"ok":true,"offset":%d}`, i) {
			t.Fatalf("publish %d: %d %s", i, code, body)
		}
		m := a.next()
		if m["offset"] != float64(i) {
			t.Fatalf("message %v, want offset %d", m, i)
		}
		if e, has := m["epoch"].(string); i == 1 {
			first = e
		} else if has {
			t.Fatalf("message %d carries an epoch: %v", i, m)
		}
	}
	if first == "" {
		t.Fatal("the stream's first publication carried no epoch")
	}
	a.Conn.Close()
	for i := 4; i <= 6; i++ {
		g.post("/api/publish", fmt.Sprintf(`{"channel":"hist:room","data":{"n":%d}}`, i))
	}

	b := dial(t, g.addr)
	b.sendText(`{"op":"subscribe","channel":"hist:room","id":2,"since":3,"epoch":"` + first + `"}`)
	ok := b.next()
	epoch, _ := ok["epoch"].(string)
	if want := fmt.Sprintf(`map[epoch:%s id:2 offset:6 op:ok recovered:true replayed:3]`, first); epoch != first || fmt.Sprint(ok) != want {
		t.Fatalf("recovering ok %v, want %s", ok, want)
	}
	for i := 4; i <= 6; i++ {
		if m := b.next(); m["offset"] != float64(i) || fmt.Sprint(m["data"]) != fmt.Sprintf("map[n:%d]", i) {
			t.Fatalf("replayed %v, want offset %d", m, i)
		}
	}
	b.sendText(`{"op":"publish","channel":"hist:room","data":"live","id":3}`)
	got := []string{fmt.Sprint(b.next()), fmt.Sprint(b.next())}
	if !strings.Contains(strings.Join(got, " "), "offset:7 op:ok") || !strings.Contains(strings.Join(got, " "), "data:live") {
		t.Fatalf("live publish: %v", got)
	}

	// The admin API reads the stream too.
	if code, body := g.get("/api/history/hist:room?since=5&limit=1"); code != 200 ||
		strings.TrimSpace(body) != `{"offset":7,"epoch":"`+epoch+`","publications":[{"offset":6,"data":{"n":6}}]}` {
		t.Fatalf("GET /api/history: %d %s", code, body)
	}
	for path, want := range map[string]int{"/api/history/plain": 404, "/api/history/hist:room?since=-1": 400, "/api/history/hist:room?limit=0": 400} {
		if code, body := g.get(path); code != want {
			t.Errorf("GET %s: %d %s, want %d", path, code, body, want)
		}
	}

	// Another epoch, a since past the end, a bad since.
	c := dial(t, g.addr)
	c.sendText(`{"op":"subscribe","channel":"hist:room","id":4,"since":2,"epoch":"other"}`)
	if m := c.next(); m["recovered"] != false || m["offset"] != 7.0 {
		t.Fatalf("other epoch: %v", m)
	}
	c.sendText(`{"op":"subscribe","channel":"hist:other","id":5,"since":-1}`)
	if m := c.next(); m["op"] != "error" || m["code"] != 400.0 {
		t.Fatalf("since -1: %v", m)
	}
}

// TestHistoryConfigErrors: history options are checked with their key.
func TestHistoryConfigErrors(t *testing.T) {
	expectConfigErrors(t, []configError{
		{"namespaces: {hist: {history_size: 10}}", "namespaces.hist.history_ttl: must be set"},
		{"namespaces: {hist: {history_size: -1, history_ttl: 1m}}", "namespaces.hist.history_size: must be from 0"},
		{"namespaces: {hist: {history_ttl: 1m}}", "namespaces.hist.history_ttl: needs history_size"},
		{"namespaces: {hist: {history_size: 5, history_ttl: 1m, recovery_max: -3}}", "namespaces.hist.recovery_max: must be from 0"},
	})
}

// configError is a configuration file and a part of the error that
// `config check` must report for it.
type configError struct{ yaml, want string }

// expectConfigErrors runs `config check` on each file: exit 2, with the error.
func expectConfigErrors(t *testing.T, cases []configError) {
	t.Helper()
	for _, tc := range cases {
		code, stdout, stderr := runWshub(t, "config", "check", writeConfig(t, tc.yaml))
		if out := stdout + stderr; code != 2 || !strings.Contains(out, tc.want) {
			t.Errorf("%s: exit %d, output %q; want 2 and %q", tc.yaml, code, out, tc.want)
		}
	}
}

// TestHistoryLongReplay: a replay several send queues long goes out whole,
// paced, and live delivery follows it (a send queue of 64 frames).
func TestHistoryLongReplay(t *testing.T) {
	g := startGateway(t, "--config", writeConfig(t, historyConfig), "--send-queue", "64")
	const n = 700
	for i := 1; i <= n; i++ {
		if code, _ := g.post("/api/publish", fmt.Sprintf(`{"channel":"hist:long","data":%d}`, i)); code != 200 {
			t.Fatalf("publish %d: %d", i, code)
		}
	}
	c := dial(t, g.addr)
	c.sendText(`{"op":"subscribe","channel":"hist:long","id":1,"since":0}`)
	if ok := c.next(); ok["recovered"] != true || ok["replayed"] != float64(n) {
		t.Fatalf("ok %v, want recovered with %d replayed", ok, n)
	}
	g.post("/api/publish", `{"channel":"hist:long","data":"live"}`)
	for i := 1; i <= n+1; i++ {
		if m := c.next(); m["offset"] != float64(i) {
			t.Fatalf("message %d: %v", i, m)
		}
	}
}

// TestHistoryTTL: a stream with no publication for history_ttl is gone; a
// recovery into it is refused and the next publication opens a new epoch.
func TestHistoryTTL(t *testing.T) {
	g := startGateway(t, "--config", writeConfig(t, "namespaces: {hist: {history_size: 10, history_ttl: 300ms}}\n"))
	for i := 0; i < 3; i++ {
		g.post("/api/publish", `{"channel":"hist:t","data":1}`)
	}
	c := dial(t, g.addr)
	c.sendText(`{"op":"subscribe","channel":"hist:t","id":1}`)
	old := c.next()
	if old["offset"] != 3.0 {
		t.Fatalf("ok %v", old)
	}
	c.sendText(`{"op":"unsubscribe","channel":"hist:t","id":2}`)
	c.next()
	eventually(t, 5*time.Second, func() bool {
		_, body := g.get("/api/history/hist:t")
		return strings.HasPrefix(body, `{"offset":0,"epoch":""`)
	}, "the stream to expire")
	c.sendText(fmt.Sprintf(`{"op":"subscribe","channel":"hist:t","id":3,"since":3,"epoch":%q}`, old["epoch"]))
	if m := c.next(); m["recovered"] != false || m["offset"] != 0.0 {
		t.Fatalf("after expiry: %v", m)
	}
	g.post("/api/publish", `{"channel":"hist:t","data":"new"}`)
	if m := c.next(); m["offset"] != 1.0 {
		t.Fatalf("first publication of the new stream: %v", m)
	}
	c.sendText(`{"op":"subscribe","channel":"hist:t","id":4}`)
	if m := c.next(); m["epoch"] == old["epoch"] || m["epoch"] == "" {
		t.Fatalf("new stream's epoch %v, old %v", m["epoch"], old["epoch"])
	}
}
