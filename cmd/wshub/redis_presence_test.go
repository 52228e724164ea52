package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wshub/wshub/redis/redistest"
)

// Presence on Redis through real gateways: members of three instances in
// one answer; a killed instance's members gone within its heartbeat
// fencing; a leave announced across instances.
func TestRedisPresenceAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	conf := writeConfig(t, presenceConfig)
	var gws []*gateway
	var members []*client
	for i, name := range []string{"pres-a", "pres-b", "pres-c"} {
		g := startRedisGateway(t, srv.URL(), name, "--config", conf)
		gws = append(gws, g)
		user := fmt.Sprintf("user%d", i)
		c := dialPath(t, g.addr, "/ws?token="+mint(t, jwt.MapClaims{"sub": user, "info": map[string]any{"i": i}}))
		expectReply(t, c, `{"op":"subscribe","channel":"chat:all","id":1}`, 0)
		members = append(members, c)
	}
	stats := func(g *gateway) string {
		_, body := g.get("/api/presence/chat:all/stats")
		return strings.TrimSpace(body)
	}
	eventually(t, 5*time.Second, func() bool { return stats(gws[0]) == `{"conns":3,"users":3}` }, "3 members across 3 instances")
	_, body := gws[1].get("/api/presence/chat:all")
	for i := range 3 {
		if !strings.Contains(body, fmt.Sprintf(`"user":"user%d","info":{"i":%d}`, i, i)) {
			t.Fatalf("members %s: user%d missing", body, i)
		}
	}

	// A leave on C reaches A's subscriber (the linger is 1s; the user does
	// not come back).
	members[2].sendText(`{"op":"unsubscribe","channel":"chat:all","id":2}`)
	for {
		m := members[0].next()
		if m["op"] == "leave" {
			if m["user"] != "user2" {
				t.Fatalf("leave %v", m)
			}
			break
		}
	}

	// kill -9 of B: no Close, no cleanup; the heartbeat fencing (3 intervals
	// of 300ms) drops its member.
	killed := time.Now()
	gws[1].signal(syscall.SIGKILL)
	eventually(t, 5*time.Second, func() bool { return stats(gws[0]) == `{"conns":1,"users":1}` }, "B's member fenced")
	t.Logf("B's member gone %v after kill -9", time.Since(killed).Round(10*time.Millisecond))
}
