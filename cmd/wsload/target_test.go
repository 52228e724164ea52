package main

import (
	"bytes"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/wshub/wshub/bench/refhub"
	"github.com/wshub/wshub/loadtest/testserver"
)

// TestTargetFlagErrorsExitTwo: a target wsload cannot use is a usage
// error naming the flag, before anything is dialed.
func TestTargetFlagErrorsExitTwo(t *testing.T) {
	const syntax = " (want ws://host[:port][/path][?query] or host:port)"
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"idle", "--conns", "1", "--target", "wss://127.0.0.1:8443/ws"},
			`--target "wss://127.0.0.1:8443/ws": wss:// is not supported: wsload has no TLS (use ws:// or host:port)`},
		{[]string{"idle", "--conns", "1", "--target", "http://127.0.0.1:8080/ws"},
			`--target "http://127.0.0.1:8080/ws": scheme "http" is not supported` + syntax},
		{[]string{"idle", "--conns", "1", "--target", "ws://127.0.0.1:1/ws,garbage"},
			`--target "garbage": missing port in address` + syntax},
		{[]string{"idle", "--conns", "1", "--target", "ws://admin:hunter2@127.0.0.1:1/ws"},
			`--target "ws://admin:xxxxx@127.0.0.1:1/ws": user info (user@ or user:password@) is not supported`},
		{[]string{"idle", "--conns", "1", "--target", "ws://127.0.0.1:1/ws#frag"},
			`--target "ws://127.0.0.1:1/ws#frag": a fragment (#...) is not allowed in a WebSocket URL`},
		{[]string{"fanout", "--subs", "1", "--publish-target", "wss://127.0.0.1:2/ws"},
			`--publish-target "wss://127.0.0.1:2/ws": wss:// is not supported: wsload has no TLS (use ws:// or host:port)`},
		{[]string{"fanout", "--subs", "1", "--publish-target", "127.0.0.1:2/ws"},
			`--publish-target "127.0.0.1:2/ws": a path needs the URL form, ws://host:port/path`},
	} {
		var out, errb bytes.Buffer
		if code := run(c.args, &out, &errb); code != 2 || errb.String() != "wsload: "+c.err+"\n" {
			t.Errorf("%v: exit %d, stderr %q\nwant exit 2, stderr %q", c.args, code, errb.String(), "wsload: "+c.err+"\n")
		}
		if strings.Contains(errb.String(), "hunter2") {
			t.Errorf("%v: the password is on stderr", c.args)
		}
	}
}

// upgrades records the request target and Host of every request an
// instance received.
type upgrades struct {
	mu   sync.Mutex
	seen map[string]int // "Host RequestURI" -> count
}

func (u *upgrades) add(r *http.Request) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.seen == nil {
		u.seen = map[string]int{}
	}
	u.seen[r.Host+" "+r.RequestURI]++
}

func (u *upgrades) get() map[string]int {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := map[string]int{}
	for k, v := range u.seen {
		out[k] = v
	}
	return out
}

// mounted serves the reference hub's /ws on path only (404 elsewhere), as
// a gateway behind a path-routing proxy would be.
func mounted(h *refhub.Hub, path string, rec *upgrades) http.Handler {
	inner := h.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.add(r)
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = "/ws", ""
		inner.ServeHTTP(w, r2)
	})
}

// TestURLTargetsCarryPathAndQuery runs fanout against ws:// URLs with
// explicit paths and queries: subscribers over a URL and a plain host:port
// (one comma-separated --target), the publisher on a third instance by
// URL. Each upgrade asks for its own target's path and query, the other
// paths would be 404, and the run is exact.
func TestURLTargetsCarryPathAndQuery(t *testing.T) {
	h := refhub.New()
	go h.Run()
	t.Cleanup(h.Stop)
	var recA1, recA2, recB upgrades
	a1 := testserver.StartInstance(mounted(h, "/gw/a/ws", &recA1))
	a2 := testserver.StartInstance(mounted(h, "/ws", &recA2))
	b := testserver.StartInstance(mounted(h, "/gw/b/socket", &recB))
	for _, in := range []*testserver.Instance{a1, a2, b} {
		t.Cleanup(in.Stop)
	}
	urlA1 := "ws://" + a1.Addr + "/gw/a/ws?tenant=t1&tags=x%2Cy"
	urlB := "ws://" + b.Addr + "/gw/b/socket?role=publisher"
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	var out, errb bytes.Buffer
	code := run([]string{"fanout", "--target", urlA1 + "," + a2.Addr, "--publish-target", urlB,
		"--subs", "12", "--channels", "3", "--publishers", "1", "--msgs", "150", "--duration", "10s", "--drain", "2s",
		"--quiet", "--json", jsonPath, "--max-loss", "0", "--max-errors", "0"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	for _, c := range []struct {
		name string
		rec  *upgrades
		want map[string]int
	}{
		{"A1", &recA1, map[string]int{a1.Addr + " /gw/a/ws?tenant=t1&tags=x%2Cy": 6}},
		{"A2", &recA2, map[string]int{a2.Addr + " /ws": 6}},
		{"B", &recB, map[string]int{b.Addr + " /gw/b/socket?role=publisher": 1}},
	} {
		if got := c.rec.get(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s received %v, want %v", c.name, got, c.want)
		}
	}
	r := readResult(t, jsonPath)
	if r.Published != 150 || r.Expected != 600 || r.Delivered != 600 || r.Lost+r.Duplicates+r.Reordered+r.Errors != 0 {
		t.Fatalf("published %d expected %d delivered %d lost %d dups %d ooo %d errors %v",
			r.Published, r.Expected, r.Delivered, r.Lost, r.Duplicates, r.Reordered, r.ErrorsByKind)
	}
	if len(r.Targets) != 2 || r.Targets[0] != urlA1 || r.Targets[1] != a2.Addr || len(r.PublishTargets) != 1 || r.PublishTargets[0] != urlB {
		t.Errorf("JSON targets %v, publish targets %v", r.Targets, r.PublishTargets)
	}
	if !strings.Contains(out.String(), "against "+urlA1+", "+a2.Addr+"; publishers on "+urlB) {
		t.Errorf("summary does not name the URLs:\n%s", out.String())
	}
}

// TestURLTargetAgainstTheGateway runs the real wshub binary and points
// wsload at it the way a user would, ws://host:port/ws?query: a clean
// fanout. The same URL with another path is refused by the gateway (404),
// so the path really comes from the URL.
func TestURLTargetAgainstTheGateway(t *testing.T) {
	addr, _ := startGateway(t, buildGateway(t), "--loops", "2")

	jsonPath := filepath.Join(t.TempDir(), "r.json")
	url := "ws://" + addr + "/ws?client=wsload&run=1"
	var out, errb bytes.Buffer
	code := run([]string{"fanout", "--target", url, "--subs", "20", "--channels", "2", "--publishers", "2",
		"--msgs", "200", "--duration", "10s", "--drain", "2s", "--quiet", "--json", jsonPath,
		"--max-loss", "0", "--max-errors", "0"}, &out, &errb)
	if code != 0 {
		t.Fatalf("%s: exit %d\n%s%s", url, code, out.String(), errb.String())
	}
	r := readResult(t, jsonPath)
	if r.Connected != 22 || r.Published != 200 || r.Expected != 2000 || r.Delivered != 2000 || r.Lost+r.Duplicates+r.Reordered+r.Errors != 0 {
		t.Fatalf("%s: connected %d published %d expected %d delivered %d lost %d dups %d ooo %d errors %v",
			url, r.Connected, r.Published, r.Expected, r.Delivered, r.Lost, r.Duplicates, r.Reordered, r.ErrorsByKind)
	}

	wrong := "ws://" + addr + "/not-ws?client=wsload"
	out.Reset()
	errb.Reset()
	code = run([]string{"idle", "--target", wrong, "--conns", "3", "--duration", "10ms", "--quiet",
		"--json", jsonPath, "--max-errors", "0"}, &out, &errb)
	if r := readResult(t, jsonPath); code != 1 || r.Connected != 0 || r.ErrorsByKind["refused"] != 3 || r.Refused["404"] != 3 {
		t.Fatalf("%s: exit %d, connected %d, errors %v; want exit 1 and 3 upgrades refused with 404\n%s", wrong, code, r.Connected, r.ErrorsByKind, errb.String())
	}
}
