package main

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The admin listener's protection, end to end: an address other hosts can
// reach needs an API key or an explicit admin.insecure, and
// admin.protect_metrics puts /metrics behind the key while the health
// checks stay open.

// adminGet fetches an admin path with header lines ("Name: value").
func adminGet(g *gateway, path string, headers ...string) (int, string) {
	g.t.Helper()
	req, err := http.NewRequest("GET", "http://"+g.admin+path, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	return g.answer(http.DefaultClient.Do(req))
}

// wildcardAdmin checks that the admin listener is bound to every interface.
func wildcardAdmin(t *testing.T, g *gateway) {
	t.Helper()
	host, _, err := net.SplitHostPort(g.admin)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsUnspecified() {
		t.Fatalf("admin listener on %q, want the wildcard address", g.admin)
	}
}

// TestAdminPublicAddressGateway: --admin-addr 0.0.0.0:0 without a key is
// refused at start (exit 2, an error that says what to set, nothing
// listened on); with admin.insecure: true in the file it starts and its API
// answers without a key; with a key it starts and wants it.
func TestAdminPublicAddressGateway(t *testing.T) {
	g := launchGateway(t, "--admin-addr", "0.0.0.0:0")
	if code := g.waitExit(10 * time.Second); code != 2 {
		t.Fatalf("exit code %d, want 2\n%s", code, g.logs.String())
	}
	logs := g.logs.String()
	for _, s := range []string{`"0.0.0.0:0" is reachable from other hosts`, "admin.api_keys", "--admin-api-key", "admin.insecure"} {
		if !strings.Contains(logs, s) {
			t.Errorf("the refusal does not say %q:\n%s", s, logs)
		}
	}
	if strings.Contains(logs, listeningMsg) {
		t.Errorf("a refused configuration listened:\n%s", logs)
	}

	insecure := startGateway(t, "--admin-addr", "0.0.0.0:0", "--config", writeConfig(t, "admin:\n  insecure: true\n"))
	wildcardAdmin(t, insecure)
	if code, body := insecure.post("/api/publish", `{"channel":"a","data":1}`); code != 200 {
		t.Fatalf("publish on the insecure admin API without a key: %d %s", code, body)
	}

	keyed := startGateway(t, "--admin-addr", "0.0.0.0:0", "--admin-api-key", "k1")
	wildcardAdmin(t, keyed)
	if code, _ := keyed.post("/api/publish", `{"channel":"a","data":1}`); code != 401 {
		t.Fatalf("publish without the key: %d, want 401", code)
	}
}

// TestAdminProtectMetrics: with admin.protect_metrics and a key, /metrics
// answers 401 without the key and the metrics with it (either header);
// /healthz and /readyz stay open for load balancers.
func TestAdminProtectMetrics(t *testing.T) {
	g := startGateway(t, "--config", writeConfig(t, "admin:\n  api_keys: [m-key, other-key]\n  protect_metrics: true\n"))
	if code, body := adminGet(g, "/metrics"); code != 401 || strings.Contains(body, "wshub_") {
		t.Fatalf("/metrics without a key: %d %q, want 401 and no metrics", code, body)
	}
	if code, _ := adminGet(g, "/metrics", "X-API-Key: wrong"); code != 401 {
		t.Fatalf("/metrics with a wrong key: %d, want 401", code)
	}
	for _, h := range []string{"Authorization: Bearer m-key", "X-API-Key: other-key"} {
		code, body := adminGet(g, "/metrics", h)
		if code != 200 || !strings.Contains(body, "\nwshub_eventloop_connections ") {
			t.Fatalf("/metrics with %q: %d, want 200 and the metrics:\n%.300s", h, code, body)
		}
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _ := adminGet(g, p); code != 200 {
			t.Fatalf("%s without a key: %d, want 200", p, code)
		}
	}
	if code, _ := g.post("/api/publish", `{"channel":"a","data":1}`); code != 401 {
		t.Fatalf("publish without the key: %d, want 401", code)
	}
}
