package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wshub/wshub/redis/redistest"
)

// Helpers for the tests that run gateways on real Redis servers.

// fastRedis are flags that put a gateway named id on Redis with failure
// detection short enough for tests.
func fastRedis(target, id string, extra ...string) []string {
	flag := "--redis"
	if !strings.HasPrefix(target, "redis://") {
		flag = "--redis-cluster"
	}
	return append([]string{flag, target, "--instance-id", id,
		"--redis-probe-interval", "100ms", "--redis-probe-timeout", "500ms", "--heartbeat-interval", "300ms"}, extra...)
}

// startRedisGateway starts a gateway on Redis and waits until it is ready.
func startRedisGateway(t *testing.T, target, id string, extra ...string) *gateway {
	t.Helper()
	g := startGateway(t, fastRedis(target, id, extra...)...)
	g.waitReady(200, 5*time.Second)
	return g
}

// readyz returns the /readyz status, 0 when the admin listener does not answer.
func (g *gateway) readyz() int {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + g.admin + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitReady polls /readyz until it answers want and returns how long it took.
func (g *gateway) waitReady(want int, within time.Duration) time.Duration {
	g.t.Helper()
	return eventually(g.t, within, func() bool { return g.readyz() == want }, fmt.Sprintf("/readyz %d on %s", want, g.admin))
}

// eventually is redistest.Eventually.
var eventually = redistest.Eventually

// call sends cmd with a fresh id and returns the reply to it (ok, error, pong);
// messages read meanwhile are kept for msg.
func (cl *client) call(cmd map[string]any) map[string]any {
	cl.T.Helper()
	cl.lastID++
	id := cl.lastID
	cmd["id"] = id
	cl.send(cmd)
	for {
		m := cl.next()
		if (m["op"] == "ok" || m["op"] == "error" || m["op"] == "pong") && m["id"] == float64(id) {
			return m
		}
		cl.stash = append(cl.stash, m)
	}
}

// mustOK is call, failing the test unless the reply is ok.
func (cl *client) mustOK(cmd map[string]any) map[string]any {
	cl.T.Helper()
	m := cl.call(cmd)
	if m["op"] != "ok" {
		cl.T.Fatalf("%v: %v", cmd, m)
	}
	return m
}

// subscribe subscribes to each channel and waits for every ok.
func (cl *client) subscribe(channels ...string) {
	cl.T.Helper()
	for _, ch := range channels {
		cl.mustOK(map[string]any{"op": "subscribe", "channel": ch})
	}
}

// msg returns the next server-initiated message (message, direct ...).
func (cl *client) msg() map[string]any {
	cl.T.Helper()
	if len(cl.stash) > 0 {
		m := cl.stash[0]
		cl.stash = cl.stash[1:]
		return m
	}
	return cl.next()
}

// info returns the connection's id and its instance (the info extension).
func (cl *client) info() (conn, instance string) {
	cl.T.Helper()
	m := cl.mustOK(map[string]any{"op": "info"})
	conn, _ = m["conn"].(string)
	instance, _ = m["instance"].(string)
	if conn == "" || instance == "" || !strings.HasPrefix(conn, instance+".") {
		cl.T.Fatalf("info: %v", m)
	}
	return conn, instance
}

// expectQuiet checks that nothing but the answer to a ping arrives: what
// was sent to this connection before the ping would come first.
func (cl *client) expectQuiet() {
	cl.T.Helper()
	cl.call(map[string]any{"op": "ping"})
	if len(cl.stash) > 0 {
		cl.T.Fatalf("unexpected messages: %v", cl.stash)
	}
}

// metric reads one unlabelled sample from /metrics.
func (g *gateway) metric(name string) float64 {
	g.t.Helper()
	_, body := g.get("/metrics")
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				g.t.Fatalf("metric %s: %q", name, line)
			}
			return v
		}
	}
	g.t.Fatalf("metric %s not found", name)
	return 0
}
