package main

import (
	"bytes"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

// printWith runs `wshub config print args...` in-process.
func printWith(t *testing.T, args []string, env map[string]string) string {
	t.Helper()
	var out, errs bytes.Buffer
	if code := configCommand(append([]string{"print"}, args...), func(k string) (string, bool) { v, ok := env[k]; return v, ok }, &out, &errs); code != 0 {
		t.Fatalf("config print %v: exit %d: %s", args, code, errs.String())
	}
	return out.String()
}

// loadWith is loadConfig with env, the bookkeeping of where each value came
// from left out.
func loadWith(t *testing.T, args []string, env map[string]string) *config {
	t.Helper()
	c, _, err := loadConfig(args, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	c.src, c.ConfigFile = nil, ""
	return c
}

// What config print writes, --config reads back to the same configuration,
// and printing that again gives the same file; the secrets are comments,
// so they come from the environment the second time.
func TestConfigPrintRoundTrip(t *testing.T) {
	file := writeConfig(t, `
loops: 2
origins: [https://a.example, "8080"]
memory_limit: 2GiB
instance_id: "007"
admin:
  api_keys: [k1-secret, k2-secret]
  protect_metrics: true
redis:
  url: redis://user:pw-secret@127.0.0.1:6379/0
  registry: false
auth:
  jwt_secret: [s1-secret]
  jwt_public_key: [/etc/wshub/a.pem, /etc/wshub/b.pem]
  jwt_issuer: https://issuer.example
  require_exp: true
limits:
  commands_per_s: 12.5
  max_rejections: 5
default_namespace: {subscribe: authenticated, publish: subscribers}
namespaces:
  chat: {subscribe: token}
  room-1: {subscribe: anyone, publish: subscribers}
  empty: {}
`)
	args := []string{"--config", file, "--ping-interval", "30s", "--log-format", "json"}
	env := map[string]string{"WSHUB_ECHO": "true", "WSHUB_MAX_PUBLISH": "1000"}
	first := printWith(t, args, env)
	for _, secret := range []string{"k1-secret", "s1-secret", "pw-secret"} {
		if strings.Contains(first, secret) {
			t.Errorf("config print shows %q:\n%s", secret, first)
		}
	}
	for _, line := range []string{
		"  # api_keys: <2 values set, not printed>\n", "  # jwt_secret: <1 value set, not printed>\n",
		"  # url: <redis://user:xxxxx@127.0.0.1:6379/0, password not printed>\n",
		"ping_interval: 30s\n", "echo: true\n", "max_publish: 1000\n", "  format: json\n", `instance_id: "007"` + "\n",
		"  commands_per_s: 12.5\n", "  commands_burst: 0\n", // derived at start, so printed as not given
	} {
		if !strings.Contains(first, line) {
			t.Errorf("config print has no line %q:\n%s", line, first)
		}
	}

	printed := writeConfig(t, first)
	secrets := map[string]string{"WSHUB_ADMIN_API_KEY": "x1,x2", "WSHUB_JWT_SECRET": "y", "WSHUB_REDIS": "redis://user:other@127.0.0.1:6379/0"}
	if again := printWith(t, []string{"--config", printed}, secrets); again != first {
		t.Errorf("printed again:\n%s\nfirst:\n%s", again, first)
	}
	orig, loaded := loadWith(t, args, env), loadWith(t, []string{"--config", printed}, nil)
	orig.AdminAPIKeys, orig.JWTSecrets, orig.Redis = nil, nil, ""
	if !reflect.DeepEqual(orig, loaded) {
		t.Errorf("loaded back, apart from the secrets:\n%+v\nwant\n%+v", loaded, orig)
	}

	// Left unset, a default worked out at start stays so: derived again
	// from what the file says next time.
	def := printWith(t, nil, nil)
	for _, line := range []string{"  # registry: <not set: on when Redis is configured>\n", `instance_id: ""` + "\n", "# default_namespace: <not given"} {
		if !strings.Contains(def, line) {
			t.Errorf("defaults print no line %q:\n%s", line, def)
		}
	}
	if again := printWith(t, []string{"--config", writeConfig(t, def)}, nil); again != def {
		t.Errorf("defaults printed again:\n%s\nfirst:\n%s", again, def)
	}
}

// `wshub config check FILE` says ok and exits 0, or says why not and exits 2.
func TestConfigCheckCommand(t *testing.T) {
	run := func(args ...string) (code int, stdout, stderr string) {
		cmd := exec.Command(wshubBin, args...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		_ = cmd.Run()
		return cmd.ProcessState.ExitCode(), o.String(), e.String()
	}
	good := writeConfig(t, "loops: 2\nnamespaces:\n  chat: {publish: subscribers}\n")
	if code, out, errs := run("config", "check", good); code != 0 || out != good+": ok\n" {
		t.Errorf("a good file: exit %d, %q %q", code, out, errs)
	}
	bad := writeConfig(t, "loops: 2\nadmin:\n  adr: x\n")
	if code, out, errs := run("config", "check", bad); code != 2 || out != "" || !strings.Contains(errs, bad+`:3: unknown key "admin.adr"`) {
		t.Errorf("a bad file: exit %d, %q %q", code, out, errs)
	}
	invalid := writeConfig(t, "admin:\n  addr: 0.0.0.0:9090\n")
	if code, _, errs := run("config", "check", invalid); code != 2 || !strings.Contains(errs, "set admin.api_keys (--admin-api-key) or admin.insecure: true") {
		t.Errorf("a public admin address without a key: exit %d, %q", code, errs)
	}
	for _, args := range [][]string{{"config"}, {"config", "check"}, {"config", "check", good, good}, {"config", "frobnicate"}, {"config", "check", "/nonexistent.yaml"}} {
		if code, _, errs := run(args...); code != 2 || errs == "" {
			t.Errorf("%v: exit %d, %q", args, code, errs)
		}
	}
	if code, out, _ := run("config", "print", "--config", good, "--loops", "3"); code != 0 || !strings.Contains(out, "\nloops: 3\n") ||
		!strings.Contains(out, "  chat:\n    publish: subscribers\n") {
		t.Errorf("config print: exit %d:\n%s", code, out)
	}
	if code, _, errs := run("config", "print", "--config", bad); code != 2 || !strings.Contains(errs, "unknown key") {
		t.Errorf("config print of a bad file: exit %d, %q", code, errs)
	}
	if code, _, errs := run("-h"); code != 0 || !strings.Contains(errs, "wshub config check FILE") ||
		!strings.Contains(errs, "  -admin-addr string\n") || !strings.Contains(errs, `(default "127.0.0.1:9090"; config admin.addr)`) {
		t.Errorf("wshub -h: exit %d:\n%s", code, errs)
	}
}

// The gateway runs with what the file says; a flag still wins over it.
func TestGatewayReadsConfigFile(t *testing.T) {
	file := writeConfig(t, "instance_id: from-file\necho: true\nlog:\n  level: error\n  format: json\n")
	g := startGateway(t, "--config", file) // with --log-level debug
	logs := g.logs.String()
	if !strings.Contains(logs, `"instance":"from-file"`) || !strings.Contains(logs, `"echo":true`) || !strings.Contains(logs, `"level":"DEBUG"`) {
		t.Fatalf("logs of a gateway on %s:\n%s", file, logs)
	}
}
