package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeConfig writes a configuration file named wshub.yaml and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wshub.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Each layer wins over the ones under it: flag > WSHUB_ variable > file >
// default, for a scalar, a list and a duration, in a section or not.
func TestConfigPrecedence(t *testing.T) {
	file := writeConfig(t, `
loops: 3
origins: [https://file.example]
redis:
  probe_interval: 3s
`)
	for _, tc := range []struct {
		layer string
		args  []string
		env   map[string]string
		loops int
		orig  []string
		probe time.Duration
	}{
		{"default", nil, nil, 0, nil, time.Second},
		{"file", []string{"--config", file}, nil, 3, []string{"https://file.example"}, 3 * time.Second},
		{"environment", []string{"--config", file},
			map[string]string{"WSHUB_LOOPS": "4", "WSHUB_ORIGINS": "https://env.example, https://env2.example", "WSHUB_REDIS_PROBE_INTERVAL": "4s"},
			4, []string{"https://env.example", "https://env2.example"}, 4 * time.Second},
		{"flag", []string{"--config", file, "--loops", "5", "--origins", "https://flag.example", "--redis-probe-interval", "5s"},
			map[string]string{"WSHUB_LOOPS": "4", "WSHUB_ORIGINS": "https://env.example", "WSHUB_REDIS_PROBE_INTERVAL": "4s"},
			5, []string{"https://flag.example"}, 5 * time.Second},
		{"WSHUB_CONFIG", nil, map[string]string{"WSHUB_CONFIG": file}, 3, []string{"https://file.example"}, 3 * time.Second},
	} {
		c, err := parseWith(t, tc.args, tc.env)
		if err != nil {
			t.Fatalf("%s: %v", tc.layer, err)
		}
		if c.Loops != tc.loops || !slices.Equal(c.origins(), tc.orig) || c.ProbeInterval != tc.probe {
			t.Errorf("%s wins: loops %d origins %q probe %v, want %d %q %v", tc.layer, c.Loops, c.origins(), c.ProbeInterval, tc.loops, tc.orig, tc.probe)
		}
	}
}

// A repeatable flag adds to its list; the list it makes replaces the file's.
func TestConfigRepeatableList(t *testing.T) {
	file := writeConfig(t, "auth:\n  jwt_secret: [from-file]\n")
	c, err := parseWith(t, []string{"--config", file, "--jwt-secret", "a", "--jwt-secret", "b,c"}, nil)
	if err != nil || !slices.Equal(c.JWTSecrets, []string{"a", "b", "c"}) {
		t.Fatalf("repeated --jwt-secret: %q %v", c.JWTSecrets, err)
	}
	c, err = parseWith(t, []string{"--config", file}, map[string]string{"WSHUB_JWT_SECRET": "x,y"})
	if err != nil || !slices.Equal(c.JWTSecrets, []string{"x", "y"}) {
		t.Fatalf("WSHUB_JWT_SECRET over the file: %q %v", c.JWTSecrets, err)
	}
	// --origins is not repeatable: the last one wins, as it always did.
	c, err = parseWith(t, []string{"--origins", "https://a", "--origins", "https://b"}, nil)
	if err != nil || !slices.Equal(c.origins(), []string{"https://b"}) {
		t.Fatalf("--origins twice: %q %v", c.origins(), err)
	}
}

// Every file-only key reaches its field.
func TestConfigFileOnlyKeys(t *testing.T) {
	file := writeConfig(t, `
admin:
  api_keys: [k1]
  protect_metrics: true
  addr: 0.0.0.0:9090
auth:
  jwt_public_key: [/etc/wshub/jwt.pem]
  require_exp: true
  max_conns_per_user: 3
limits:
  commands_per_s: 20.5
  publishes_per_s: 5
  publishes_burst: 10
  max_rejections: 3
  rejection_window: 30s
  max_conns_per_ip: 100
  handshakes_per_ip_per_s: 2
allow_unknown_namespaces: false
default_namespace: {subscribe: authenticated}
namespaces:
  chat: {subscribe: token, publish: subscribers}
  news: {publish: nobody}
`)
	c, err := parseWith(t, []string{"--config", file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.AdminProtectMetrics || !c.RequireExp || c.MaxConnsPerUser != 3 || c.CommandsPerSec != 20.5 ||
		c.CommandsBurst != 21 || c.PublishesBurst != 10 || c.MaxRejections != 3 || c.RejectionWindow != 30*time.Second ||
		c.MaxConnsPerIP != 100 || c.HandshakesPerIPPerSec != 2 || c.AllowUnknownNamespaces {
		t.Fatalf("file-only settings: %+v", c)
	}
	if got := c.defaultNamespace(); got != (namespaceOptions{Subscribe: "authenticated", Publish: "authenticated"}) {
		t.Errorf("default namespace with auth and only subscribe given: %+v", got)
	}
	if got, ok := c.namespace("news"); !ok || got != (namespaceOptions{Subscribe: "authenticated", Publish: "nobody"}) {
		t.Errorf("news inherits subscribe from the default namespace: %+v %v", got, ok)
	}
	if _, ok := c.namespace("other"); ok {
		t.Error("an unlisted namespace is refused with allow_unknown_namespaces: false")
	}
}

// Without default_namespace the auth settings decide: open without auth,
// authenticated clients only with it.
func TestDefaultNamespaceRule(t *testing.T) {
	c, err := parseWith(t, nil, nil)
	if err != nil || c.DefaultNamespace != nil || c.defaultNamespace() != (namespaceOptions{Subscribe: "anyone", Publish: "anyone"}) {
		t.Fatalf("without auth: %+v %+v %v", c.DefaultNamespace, c.defaultNamespace(), err)
	}
	if o, ok := c.namespace("room"); !ok || o != (namespaceOptions{Subscribe: "anyone", Publish: "anyone"}) {
		t.Fatalf("an unlisted namespace follows the default one: %+v %v", o, ok)
	}
	c, err = parseWith(t, []string{"--jwt-jwks", "/etc/jwks.json"}, nil)
	if err != nil || c.defaultNamespace() != (namespaceOptions{Subscribe: "authenticated", Publish: "authenticated"}) {
		t.Fatalf("with auth: %+v %v", c.defaultNamespace(), err)
	}
}

// Mistakes in the file are errors naming the file, the line and the key,
// every one of them at once.
func TestConfigFileErrors(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		says []string
	}{
		{"addr: :1\nadmin:\n  adr: 127.0.0.1:1\n", []string{`wshub.yaml:3: unknown key "admin.adr" (did you mean "admin.addr"?)`}},
		{"loops: 2\nloops: 3\n", []string{`wshub.yaml:2: loops: given twice (first on line 1)`}},
		{"nonsense: 1\nlog: {level: info, colour: red}\n", []string{`wshub.yaml:1: unknown key "nonsense"` + "\n", `wshub.yaml:2: unknown key "log.colour"`}},
		{"loops: many\n", []string{`wshub.yaml:1: loops: want an integer, got "many"`}},
		{"echo: yes please\n", []string{`wshub.yaml:1: echo: want true or false, got "yes please"`}},
		{"\nping_interval: 25\n", []string{`wshub.yaml:2: ping_interval: want a duration like 25s or 1m30s, got "25"`}},
		{"addr: [a]\n", []string{`wshub.yaml:1: addr: want a string, got a sequence`}},
		{"origins: https://a.example\n", []string{`wshub.yaml:1: origins: want a sequence of strings, got "https://a.example"`}},
		{"origins:\n  - https://a.example\n  - {b: c}\n", []string{`wshub.yaml:3: origins: element 2: want a string, got a mapping`}},
		{"memory_limit: 2 gigs\n", []string{`wshub.yaml:1: memory_limit: want a number of bytes`}},
		{"limits:\n  commands_per_s: fast\n", []string{`wshub.yaml:2: limits.commands_per_s: want a number, got "fast"`}},
		{"admin: 9090\n", []string{`wshub.yaml:1: admin: want a mapping, got "9090"`}},
		{"- addr\n", []string{`wshub.yaml:1: want a mapping of settings (key: value), got a sequence`}},
		{"addr: :1\n---\naddr: :2\n", []string{`a second YAML document`}},
		{"addr: [\n", []string{`wshub.yaml: yaml:`}},
		{"namespaces:\n  chat:\n    subscribe: anyone\n    histroy: 10\n", []string{`wshub.yaml:4: unknown key "namespaces.chat.histroy"`}},
		{"namespaces:\n  chat:\n    subscirbe: anyone\n", []string{`wshub.yaml:3: unknown key "namespaces.chat.subscirbe" (did you mean "namespaces.chat.subscribe"?)`}},
		{"namespaces:\n  chat: [anyone]\n", []string{`wshub.yaml:2: namespaces.chat: want a mapping, got a sequence`}},
		{"default_namespace:\n  publish: 3\n  subscribe: [x]\n", []string{`wshub.yaml:3: default_namespace.subscribe: want a string, got a sequence`}},
		// Checks of values name the line the value came from too.
		{"max_message: 10\n", []string{`wshub.yaml:1: max_message must be between 125 bytes and 64 MiB, got 10`}},
		{"namespaces:\n  chat:\n    publish: everyone\n", []string{`wshub.yaml:3: namespaces.chat.publish: "everyone" is not one of anyone, subscribers, authenticated, token, nobody`}},
		{"default_namespace: {subscribe: subscribers}\n", []string{`wshub.yaml:1: default_namespace.subscribe: "subscribers" is not one of anyone, authenticated, token, nobody`}},
		{"namespaces:\n  chat: {subscribe: token}\n", []string{`wshub.yaml:2: namespaces.chat.subscribe: token needs client authentication`}},
		{"namespaces:\n  \"a:b\": {}\n  \"\": {}\n  " + strings.Repeat("n", 65) + ": {}\n", []string{
			`wshub.yaml:2: namespaces.a:b: namespace name "a:b" must not contain ':', '#' or ','`,
			`wshub.yaml:3: namespaces.: a namespace name must not be empty`,
			`wshub.yaml:4: namespaces.nnn`, `is longer than 64 bytes`,
		}},
		{"auth:\n  jwt_issuer: https://issuer.example\n", []string{`wshub.yaml:2: auth.jwt_issuer needs client authentication: set auth.jwt_secret (--jwt-secret)`}},
		{"limits:\n  max_rejections: 3\n", []string{`wshub.yaml:2: limits.max_rejections counts rate-limit rejections`}},
		{"limits:\n  commands_burst: 3\n", []string{`wshub.yaml:2: limits.commands_burst needs limits.commands_per_s`}},
		{"limits:\n  max_conns_per_ip: -1\n", []string{`wshub.yaml:2: limits.max_conns_per_ip must not be negative`}},
		{"compression: true\ncompression_min_size: -1\n", []string{`wshub.yaml:2: compression_min_size must not be negative, got -1`}},
	} {
		_, err := parseWith(t, []string{"--config", writeConfig(t, tc.yaml)}, nil)
		for _, s := range tc.says {
			if err == nil || !strings.Contains(err.Error(), s) {
				t.Errorf("%q: %v, want an error saying %q", tc.yaml, err, s)
			}
		}
	}
	if _, err := parseWith(t, []string{"--config", "/nonexistent/wshub.yaml"}, nil); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("a missing file: %v", err)
	}
	// Empty files and sections (every key commented out), and aliases,
	// which are followed.
	for _, ok := range []string{"", "# nothing but a comment\n", "~\n", "admin:\n#  addr: x\nnamespaces:\n", "ping_interval: &b 5s\npong_timeout: *b\n"} {
		if _, err := parseWith(t, []string{"--config", writeConfig(t, ok)}, nil); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

// A bad WSHUB_ variable is named as such, and so is its value's check; a
// flag over a bad file value is named as the flag.
func TestConfigErrorsNameTheSource(t *testing.T) {
	file := writeConfig(t, "loops: 999\n")
	if _, err := parseWith(t, []string{"--config", file, "--loops", "300"}, nil); err == nil || !strings.HasPrefix(err.Error(), "--loops must be") {
		t.Fatalf("a flag over the file: %v", err)
	}
	if _, err := parseWith(t, []string{"--config", file}, map[string]string{"WSHUB_LOOPS": "300"}); err == nil || !strings.HasPrefix(err.Error(), "WSHUB_LOOPS must be") {
		t.Fatalf("a variable over the file: %v", err)
	}
	_, err := parseWith(t, nil, map[string]string{"WSHUB_LOOPS": "999", "WSHUB_PING_INTERVAL": "soon"})
	if err == nil || !strings.Contains(err.Error(), `WSHUB_PING_INTERVAL="soon": want a duration`) {
		t.Fatalf("unparsable variable: %v", err)
	}
	_, err = parseWith(t, nil, map[string]string{"WSHUB_LOOPS": "999"})
	if err == nil || !strings.Contains(err.Error(), "WSHUB_LOOPS must be between 0 (one per core) and 256, got 999") {
		t.Fatalf("out-of-range variable: %v", err)
	}
}

// An admin listener other hosts can reach needs an API key, or admin.insecure.
func TestAdminPublicAddressNeedsKey(t *testing.T) {
	const fix = "set admin.api_keys (--admin-api-key) or admin.insecure: true"
	for _, addr := range []string{"0.0.0.0:9090", ":9090", "10.1.2.3:9090", "[::]:9090", "admin.internal:9090"} {
		if _, err := parseWith(t, []string{"--admin-addr", addr}, nil); err == nil || !strings.Contains(err.Error(), fix) {
			t.Errorf("--admin-addr %s without a key: %v, want an error saying %q", addr, err, fix)
		}
		if _, err := parseWith(t, []string{"--admin-addr", addr, "--admin-api-key", "k"}, nil); err != nil {
			t.Errorf("--admin-addr %s with a key: %v", addr, err)
		}
		if _, err := parseWith(t, []string{"--admin-addr", addr, "--config", writeConfig(t, "admin:\n  insecure: true\n")}, nil); err != nil {
			t.Errorf("--admin-addr %s with admin.insecure: %v", addr, err)
		}
	}
	for _, addr := range []string{"", "127.0.0.1:9090", "127.0.0.2:0", "[::1]:9090", "localhost:9090"} {
		if _, err := parseWith(t, []string{"--admin-addr", addr}, nil); err != nil {
			t.Errorf("--admin-addr %q is local: %v", addr, err)
		}
	}
	if _, err := parseWith(t, []string{"--config", writeConfig(t, "admin:\n  protect_metrics: true\n")}, nil); err == nil ||
		!strings.Contains(err.Error(), "admin.protect_metrics needs admin.api_keys") {
		t.Errorf("protect_metrics without keys: %v", err)
	}
}
