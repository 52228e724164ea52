package main

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wshub/wshub/redis/redistest"
)

// lookup is GET /api/connections/{id}: the status and, on 200, the entry.
func (g *gateway) lookup(id string) (int, map[string]any) {
	g.t.Helper()
	code, body := g.get("/api/connections/" + id)
	var m map[string]any
	if code == 200 {
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			g.t.Fatalf("lookup %s: %q", id, body)
		}
	}
	return code, m
}

// instances is GET /api/instances as id -> conns.
func (g *gateway) instances() map[string]int {
	g.t.Helper()
	code, body := g.get("/api/instances")
	var v struct {
		Instances []struct {
			ID    string
			Conns int
		}
	}
	if code != 200 || json.Unmarshal([]byte(body), &v) != nil {
		g.t.Fatalf("GET /api/instances: %d %s", code, body)
	}
	out := map[string]int{}
	for _, in := range v.Instances {
		out[in.ID] = in.Conns
	}
	return out
}

// Connections appear in the registry when they open and go when they close;
// addressed sends reach the one connection named, on whichever instance.
func TestRegistryAndAddressedSends(t *testing.T) {
	srv := redistest.Start(t)
	a := startRedisGateway(t, srv.URL(), "reg-a", "--loops", "4")
	b := startRedisGateway(t, srv.URL(), "reg-b")
	a1, a2, b1 := dial(t, a.addr), dial(t, a.addr), dial(t, b.addr)
	a1id, inst := a1.info()
	a2id, _ := a2.info()
	b1id, _ := b1.info()
	if inst != "reg-a" || !strings.HasPrefix(b1id, "reg-b.") || a1id == a2id {
		t.Fatalf("ids: %s %s on %s, %s", a1id, a2id, inst, b1id)
	}

	// Registration is asynchronous (batched): poll.
	eventually(t, 2*time.Second, func() bool { c, _ := b.lookup(a1id); return c == 200 }, "a1 registered")
	code, e := b.lookup(a1id)
	if code != 200 || e["id"] != a1id || e["instance"] != "reg-a" || e["connected_at"] == nil {
		t.Fatalf("lookup %s from B: %d %v", a1id, code, e)
	}
	eventually(t, 2*time.Second, func() bool {
		in := a.instances()
		return len(in) == 2 && in["reg-a"] == 2 && in["reg-b"] == 1
	}, "both instances with their connection counts")

	// From B to a connection on A, from A to one on B: only the addressee.
	if code, body := b.post("/api/send", fmt.Sprintf(`{"conn":%q,"data":{"to":"a1"}}`, a1id)); code != 200 || body != `{"ok":true,"sent":1}`+"\n" {
		t.Fatalf("send to a1: %d %q", code, body)
	}
	if m := a1.msg(); m["op"] != "direct" || m["data"].(map[string]any)["to"] != "a1" {
		t.Fatalf("a1 got %v", m)
	}
	if code, _ := a.post("/api/send", fmt.Sprintf(`{"conn":%q,"data":[1,"b1"]}`, b1id)); code != 200 {
		t.Fatalf("send to b1: %d", code)
	}
	if m := b1.msg(); m["op"] != "direct" || fmt.Sprint(m["data"]) != "[1 b1]" {
		t.Fatalf("b1 got %v", m)
	}
	a2.expectQuiet()
	a1.expectQuiet()
	b1.expectQuiet()

	for _, tc := range []struct{ body, says string }{
		{`{"conn":"reg-a.999999","data":1}`, "no live instance"},
		{`{"user":"nobody","data":1}`, "no live instance"},
	} {
		if code, body := b.post("/api/send", tc.body); code != 404 || !strings.Contains(body, tc.says) {
			t.Fatalf("send %s: %d %s", tc.body, code, body)
		}
	}
	if code, _ := b.lookup("reg-a.999999"); code != 404 {
		t.Fatalf("lookup of an unknown id: %d", code)
	}

	// Closing removes the entry.
	a2.Conn.Close()
	eventually(t, 2*time.Second, func() bool { c, _ := b.lookup(a2id); return c == 404 }, "a2 unregistered")
	if n, _ := srv.Do("EXISTS", "ws:conn:"+a2id).AsInt64(); n != 0 {
		t.Fatalf("ws:conn:%s still in Redis after close", a2id)
	}
}

// A gateway that dies is fenced within one heartbeat TTL (3 x 300ms here);
// one that is stopped with SIGTERM deletes its entries before it exits.
func TestRegistryFencingAndGracefulExit(t *testing.T) {
	srv := redistest.Start(t)
	a := startRedisGateway(t, srv.URL(), "fence-a")
	b := startRedisGateway(t, srv.URL(), "fence-b")
	c := startRedisGateway(t, srv.URL(), "fence-c")
	ca, cc := dial(t, a.addr), dial(t, c.addr)
	caID, _ := ca.info()
	ccID, _ := cc.info()
	for _, id := range []string{caID, ccID} {
		eventually(t, 2*time.Second, func() bool { code, _ := b.lookup(id); return code == 200 }, id+" registered")
	}

	// kill -9: nothing is deleted, the heartbeat lapses.
	a.signal(syscall.SIGKILL)
	killed := time.Now()
	a.waitExit(5 * time.Second)
	eventually(t, 3*time.Second, func() bool { code, _ := b.lookup(caID); return code == 404 }, "killed instance's connection fenced")
	took := time.Since(killed)
	t.Logf("connection of a killed instance stopped resolving %v after the kill", took.Round(time.Millisecond))
	if took > 900*time.Millisecond+400*time.Millisecond { // slack: polling through HTTP and Redis
		t.Fatalf("fenced after %v, want within one heartbeat TTL (900ms)", took)
	}
	if n, _ := srv.Do("EXISTS", "ws:conn:"+caID).AsInt64(); n != 1 {
		t.Fatal("test premise: the killed instance's entry should still exist (fenced, not deleted)")
	}
	if _, ok := b.instances()["fence-a"]; ok {
		t.Fatal("killed instance still listed")
	}
	if code, _ := b.post("/api/send", fmt.Sprintf(`{"conn":%q,"data":1}`, caID)); code != 404 {
		t.Fatalf("send to a fenced connection: %d", code)
	}

	// SIGTERM: drain (1001), then the entries are deleted before exit.
	c.signal(syscall.SIGTERM)
	cc.expectClose(1001)
	if code := c.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("exit code after SIGTERM: %d", code)
	}
	if code, _ := b.lookup(ccID); code != 404 {
		t.Fatalf("lookup right after a graceful exit: %d", code)
	}
	for _, k := range []string{"ws:conn:" + ccID, "ws:instance:fence-c"} {
		if n, _ := srv.Do("EXISTS", k).AsInt64(); n != 0 {
			t.Fatalf("%s still in Redis after a graceful exit", k)
		}
	}
	if in := b.instances(); len(in) != 1 || in["fence-b"] != 0 {
		t.Fatalf("instances after both left: %v", in)
	}
}

// Without the registry the info extension still works and the directory
// routes say why they cannot.
func TestNoRegistryAnswers501(t *testing.T) {
	srv := redistest.Start(t)
	for _, args := range [][]string{
		{"--instance-id", "mem-1"},
		fastRedis(srv.URL(), "mem-1", "--registry=false"),
	} {
		g := startGateway(t, args...)
		cl := dial(t, g.addr)
		if id, inst := cl.info(); inst != "mem-1" || !strings.HasPrefix(id, "mem-1.") {
			t.Fatalf("%v: info %s %s", args, id, inst)
		}
		code, body := g.post("/api/send", `{"conn":"mem-1.1","data":1}`)
		if code != 501 || !strings.Contains(body, "registry") {
			t.Fatalf("%v: send without registry: %d %s", args, code, body)
		}
		if code, _ := g.get("/api/instances"); code != 501 {
			t.Fatalf("%v: instances without registry: %d", args, code)
		}
	}
}

// A Redis that is down at start: the gateway serves health (readyz 503)
// without accepting clients and keeps trying; once Redis answers it serves.
// Told to stop meanwhile, it exits 0.
func TestRedisDownAtStart(t *testing.T) {
	// Reserved for the test: refused until the redis-server below binds it.
	port := redistest.FreePort(t, false)
	url := "redis://127.0.0.1:" + strconv.Itoa(port)
	g := launchGateway(t, fastRedis(url, "late")...)
	g.waitListening(false)
	if code := g.readyz(); code != 503 {
		t.Fatalf("/readyz while Redis is down: %d", code)
	}
	if code, body := g.post("/api/publish", `{"channel":"a","data":1}`); code != 503 {
		t.Fatalf("API publish while Redis is down: %d %s", code, body)
	}
	eventually(t, 3*time.Second, func() bool { return strings.Contains(g.logs.String(), "redis unreachable") }, "a log line saying why")
	// It has tried Redis and failed: its one listening socket is the admin
	// listener's, the WebSocket listener is not open.
	if ports := g.listenPorts(); len(ports) != 1 || net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])) != g.admin {
		t.Fatalf("listening on ports %v (admin on %s) before Redis answered: the WebSocket listener must wait", ports, g.admin)
	}
	if strings.Contains(g.logs.String(), listeningMsg) {
		t.Fatal("wshub says it is listening before Redis answered")
	}

	redistest.StartOn(t, port)
	g.waitReady(200, 10*time.Second)
	g.waitListening(true)
	s := dial(t, g.addr)
	s.subscribe("late")
	g.post("/api/publish", `{"channel":"late","data":"hi"}`)
	if m := s.msg(); m["data"] != "hi" {
		t.Fatalf("after Redis came up: %v", m)
	}

	// Stopped while still waiting.
	h := launchGateway(t, fastRedis("redis://127.0.0.1:"+strconv.Itoa(redistest.FreePort(t, false)), "never")...)
	h.waitListening(false)
	h.signal(syscall.SIGTERM)
	if code := h.waitExit(5 * time.Second); code != 0 {
		t.Fatalf("exit code when stopped while waiting for Redis: %d", code)
	}
}
