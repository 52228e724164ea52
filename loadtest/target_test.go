package loadtest

import (
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	for _, c := range []struct {
		in, path        string // path: the --path default ("" = DefaultPath)
		addr, host, uri string
	}{
		// host:port, as before: the path is --path.
		{in: "127.0.0.1:8080", addr: "127.0.0.1:8080", host: "127.0.0.1:8080", uri: "/ws"},
		{in: "localhost:9000", path: "/echo", addr: "localhost:9000", host: "localhost:9000", uri: "/echo"},
		{in: "[::1]:8080", addr: "[::1]:8080", host: "[::1]:8080", uri: "/ws"},
		// URLs: the URL's path and query.
		{in: "ws://127.0.0.1:8080/ws", addr: "127.0.0.1:8080", host: "127.0.0.1:8080", uri: "/ws"},
		{in: "ws://127.0.0.1:8080/gw/v1/socket", path: "/ignored", addr: "127.0.0.1:8080", host: "127.0.0.1:8080", uri: "/gw/v1/socket"},
		{in: "ws://127.0.0.1:8080/ws?token=abc&x=1", addr: "127.0.0.1:8080", host: "127.0.0.1:8080", uri: "/ws?token=abc&x=1"},
		{in: "ws://127.0.0.1:8080/ws/", addr: "127.0.0.1:8080", host: "127.0.0.1:8080", uri: "/ws/"},
		// no path, or just "/": --path
		{in: "ws://127.0.0.1:8080", addr: "127.0.0.1:8080", host: "127.0.0.1:8080", uri: "/ws"},
		{in: "ws://127.0.0.1:8080/", addr: "127.0.0.1:8080", host: "127.0.0.1:8080", uri: "/ws"},
		{in: "ws://127.0.0.1:8080/", path: "/echo", addr: "127.0.0.1:8080", host: "127.0.0.1:8080", uri: "/echo"},
		{in: "ws://127.0.0.1:8080?a=1", addr: "127.0.0.1:8080", host: "127.0.0.1:8080", uri: "/ws?a=1"},
		{in: "ws://127.0.0.1:8080/?a=1", path: "/ws?v=2", addr: "127.0.0.1:8080", host: "127.0.0.1:8080", uri: "/ws?v=2&a=1"},
		{in: "ws://h:1/ws?", addr: "h:1", host: "h:1", uri: "/ws"},
		// no port: 80, and the Host header without it
		{in: "ws://gw.example.com/ws", addr: "gw.example.com:80", host: "gw.example.com", uri: "/ws"},
		{in: "ws://gw.example.com", addr: "gw.example.com:80", host: "gw.example.com", uri: "/ws"},
		{in: "ws://[::1]/ws", addr: "[::1]:80", host: "[::1]", uri: "/ws"},
		{in: "ws://[::1]:81", addr: "[::1]:81", host: "[::1]:81", uri: "/ws"},
		// the scheme is case-insensitive; the rest is kept
		{in: "WS://Host:8080/Path", addr: "Host:8080", host: "Host:8080", uri: "/Path"},
		// what a request line cannot carry is percent-encoded; escapes stay
		{in: "ws://h:1/a b/%2F/é?q=a b&r=é&s=%2C&t='", addr: "h:1", host: "h:1", uri: "/a%20b/%2F/%C3%A9?q=a%20b&r=%C3%A9&s=%2C&t=%27"},
		{in: "ws://h:1/%2F", addr: "h:1", host: "h:1", uri: "/%2F"},
	} {
		got, err := parseTarget(c.in, c.path)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if want := (targetSpec{addr: c.addr, host: c.host, uri: c.uri}); got != want {
			t.Errorf("%q (--path %q): got %+v, want %+v", c.in, c.path, got, want)
		}
	}
}

func TestParseTargetRefuses(t *testing.T) {
	const syntax = " (want ws://host[:port][/path][?query] or host:port)"
	for _, c := range []struct{ in, err string }{
		{"wss://gw.example.com/ws", `"wss://gw.example.com/ws": wss:// is not supported: wsload has no TLS (use ws:// or host:port)`},
		{"WSS://h:443", `"WSS://h:443": wss:// is not supported: wsload has no TLS (use ws:// or host:port)`},
		{"http://127.0.0.1:8080/ws", `"http://127.0.0.1:8080/ws": scheme "http" is not supported` + syntax},
		{"https://h/ws", `"https://h/ws": scheme "https" is not supported` + syntax},
		{"://h:1/ws", `"://h:1/ws": missing protocol scheme` + syntax},
		{"ws://user:secret@h:1/ws", `"ws://user:xxxxx@h:1/ws": user info (user@ or user:password@) is not supported`},
		{"ws://user@h:1/ws", `"ws://user@h:1/ws": user info (user@ or user:password@) is not supported`},
		{"ws://@h:1/ws", `"ws://@h:1/ws": user info (user@ or user:password@) is not supported`},
		{"ws://h:1/ws#top", `"ws://h:1/ws#top": a fragment (#...) is not allowed in a WebSocket URL`},
		{"ws://h:1/ws#", `"ws://h:1/ws#": a fragment (#...) is not allowed in a WebSocket URL`},
		{"ws://h:0/ws", `"ws://h:0/ws": bad port "0" (want 1-65535)`},
		{"ws://h:65536/ws", `"ws://h:65536/ws": bad port "65536" (want 1-65535)`},
		{"ws://h:/ws", `"ws://h:/ws": bad port "" (want 1-65535)`},
		{"ws://h:x/ws", `"ws://h:x/ws": invalid port ":x" after host` + syntax},
		{"ws://h:1:2/ws", `"ws://h:1:2/ws": too many colons in address`},
		{"ws:///ws", `"ws:///ws": no host` + syntax},
		{"ws://:8080/ws", `"ws://:8080/ws": no host` + syntax},
		{"garbage", `"garbage": missing port in address` + syntax},
		{"127.0.0.1", `"127.0.0.1": missing port in address` + syntax},
		{"127.0.0.1:http", `"127.0.0.1:http": bad port "http" (want 1-65535)`},
		{"127.0.0.1:+80", `"127.0.0.1:+80": bad port "+80" (want 1-65535)`},
		{":8080", `":8080": no host` + syntax},
		{"127.0.0.1:8080/ws", `"127.0.0.1:8080/ws": a path needs the URL form, ws://host:port/path`},
		{"ws:/h/ws", `"ws:/h/ws": a path needs the URL form, ws://host:port/path`},
	} {
		_, err := parseTarget(c.in, "")
		if err == nil || err.Error() != c.err {
			t.Errorf("%q:\n got  %v\n want %s", c.in, err, c.err)
		}
	}
}

// TestValidateNamesTheFlag: a bad target is a usage error that names the
// flag it came from, and nothing is dialed.
func TestValidateNamesTheFlag(t *testing.T) {
	for _, c := range []struct {
		cfg Config
		err string
	}{
		{Config{Scenario: ScenarioIdle, Conns: 1, Targets: []string{"127.0.0.1:1", "wss://h/ws"}},
			`--target "wss://h/ws": wss:// is not supported: wsload has no TLS (use ws:// or host:port)`},
		{Config{Scenario: ScenarioFanout, Subs: 1, Targets: []string{"ws://127.0.0.1:1/ws"}, PublishTargets: []string{"http://h:2/ws"}},
			`--publish-target "http://h:2/ws": scheme "http" is not supported (want ws://host[:port][/path][?query] or host:port)`},
		{Config{Scenario: ScenarioIdle, Conns: 1, Targets: []string{"ws://u:pw@h/ws"}},
			`--target "ws://u:xxxxx@h/ws": user info (user@ or user:password@) is not supported`},
		{Config{Scenario: ScenarioIdle, Conns: 1, Targets: []string{"127.0.0.1:1"}, Path: "ws"},
			`--path "ws" must start with /`},
		{Config{Scenario: ScenarioIdle, Conns: 1, Targets: []string{"127.0.0.1:1"}, Path: "/a b"},
			`--path "/a b": byte 2 (' ') cannot go into a request line; percent-encode it`},
	} {
		c.cfg.Defaults()
		if err := c.cfg.Validate(); err == nil || err.Error() != c.err {
			t.Errorf("%v / %v:\n got  %v\n want %s", c.cfg.Targets, c.cfg.PublishTargets, err, c.err)
		}
	}
	ok := Config{Scenario: ScenarioFanout, Subs: 1, Targets: []string{"ws://127.0.0.1:1/a", "127.0.0.1:2"}, PublishTargets: []string{"ws://localhost/b?x=1"}}
	ok.Defaults()
	if err := ok.Validate(); err != nil {
		t.Errorf("mixed forms: %v", err)
	}
}

// TestEngineSendsEachTargetsPath: every target keeps its own path and
// query, and its own Host header, in the upgrade request.
func TestEngineSendsEachTargetsPath(t *testing.T) {
	cfg := &Config{Targets: []string{"ws://127.0.0.1:1/a?x=1", "127.0.0.1:2"}, PublishTargets: []string{"ws://localhost/b"}, Path: "/p", Channels: 1}
	e, err := newEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.shutdown()
	want := []struct {
		port      int
		host, uri string
	}{{1, "127.0.0.1:1", "/a?x=1"}, {2, "127.0.0.1:2", "/p"}, {80, "localhost", "/b"}}
	if len(e.targets) != len(want) {
		t.Fatalf("%d targets", len(e.targets))
	}
	for i, w := range want {
		tg := e.targets[i]
		if tg.sa.Port != w.port || tg.host != w.host || tg.uri != w.uri {
			t.Errorf("target %d: port %d host %q uri %q, want %+v", i, tg.sa.Port, tg.host, tg.uri, w)
		}
		req := string(appendUpgradeRequest(nil, tg.host, tg.uri, []byte("k"), nil, false, false))
		if !strings.HasPrefix(req, "GET "+w.uri+" HTTP/1.1\r\nHost: "+w.host+"\r\n") {
			t.Errorf("target %d: request %q", i, req)
		}
	}
}
