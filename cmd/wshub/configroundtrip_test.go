package main

import (
	"bytes"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// runWshub runs the built binary with args and returns its exit code and
// output.
func runWshub(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(wshubBin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), o.String(), e.String()
}

// TestConfigPrintAuthRoundTrip: `wshub config print` of a file with auth,
// limits and namespaces (no secret, so nothing is left out) prints a file
// that prints the same again, and a gateway started on the printed file
// applies what the original said.
func TestConfigPrintAuthRoundTrip(t *testing.T) {
	dir := t.TempDir()
	key := edKey(t)
	pemPath, _ := writePEM(t, dir, "ed.pem", key.Public())
	orig := writeConfig(t, `
auth:
  jwt_public_key: [`+pemPath+`]
  jwt_issuer: https://issuer.example
  jwt_audience: wshub
  jwt_leeway: 2s
  allow_anonymous: true
  require_exp: true
  max_conns_per_user: 3
limits:
  commands_per_s: 50
  commands_burst: 100
  publishes_per_s: 2.5
  publishes_burst: 5
  max_rejections: 20
  rejection_window: 30s
  max_conns_per_ip: 10
  handshakes_per_ip_per_s: 100
default_namespace: {subscribe: authenticated, publish: subscribers}
allow_unknown_namespaces: false
namespaces:
  public: {subscribe: anyone, publish: nobody}
  room: {subscribe: token, publish: subscribers}
  dm: {subscribe: nobody}
  chat-1: {}
`)
	code, first, errs := runWshub(t, "config", "print", "--config", orig)
	if code != 0 {
		t.Fatalf("config print: exit %d: %s", code, errs)
	}
	for _, line := range []string{
		"  jwt_public_key:\n    - " + pemPath + "\n", "  jwt_audience: wshub\n", "  jwt_leeway: 2s\n",
		"  allow_anonymous: true\n", "  require_exp: true\n", "  max_conns_per_user: 3\n",
		"  publishes_per_s: 2.5\n", "  rejection_window: 30s\n", "  max_conns_per_ip: 10\n", "  handshakes_per_ip_per_s: 100\n",
		"default_namespace:\n  subscribe: authenticated\n  publish: subscribers\n", "allow_unknown_namespaces: false\n",
		"  chat-1: {}\n", "  dm:\n    subscribe: nobody\n", "  room:\n    subscribe: token\n    publish: subscribers\n",
	} {
		if !strings.Contains(first, line) {
			t.Errorf("config print has no %q:\n%s", line, first)
		}
	}
	printed := writeConfig(t, first)
	if code, again, errs := runWshub(t, "config", "print", "--config", printed); code != 0 || again != first {
		t.Fatalf("printed again: exit %d %s\n%s\nfirst:\n%s", code, errs, again, first)
	}
	if code, out, errs := runWshub(t, "config", "check", printed); code != 0 {
		t.Fatalf("config check of the printed file: exit %d %s %s", code, out, errs)
	}

	// The gateway on the printed file (its addresses overridden by the
	// harness's flags) does what the original said.
	g := startGateway(t, "--config", printed)
	tok := func(claims jwt.MapClaims) string { return signed(t, jwt.SigningMethodEdDSA, key, "", claims) }
	good := func(sub string) jwt.MapClaims {
		return jwt.MapClaims{"sub": sub, "iss": "https://issuer.example", "aud": "wshub", "exp": time.Now().Add(time.Hour).Unix(), "channels": []string{"room:1", "other:1", "lobby"}}
	}
	noExp := good("alice")
	delete(noExp, "exp")
	wrongAud := good("alice")
	wrongAud["aud"] = "other"
	for what, claims := range map[string]jwt.MapClaims{"no exp (require_exp)": noExp, "wrong aud": wrongAud} {
		if resp, _ := tryUpgrade(t, g.addr, "/ws?token="+tok(claims)); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: HTTP %d, want 401", what, resp.StatusCode)
		}
	}
	alice := dialPath(t, g.addr, "/ws?token="+tok(good("alice")))
	expectReply(t, alice, `{"op":"subscribe","channel":"room:1","id":1}`, 0)
	expectReply(t, alice, `{"op":"subscribe","channel":"lobby","id":2}`, 0)
	expectReply(t, alice, `{"op":"subscribe","channel":"other:1","id":3}`, 403) // not a listed namespace
	expectReply(t, alice, `{"op":"subscribe","channel":"dm:x","id":4}`, 403)
	anon := dial(t, g.addr) // allow_anonymous
	expectReply(t, anon, `{"op":"subscribe","channel":"public:x","id":1}`, 0)
	expectReply(t, anon, `{"op":"subscribe","channel":"lobby","id":2}`, 403)
	for range 2 {
		dialPath(t, g.addr, "/ws?token="+tok(good("alice")))
	}
	if resp, _ := tryUpgrade(t, g.addr, "/ws?token="+tok(good("alice"))); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("alice's fourth connection: HTTP %d, want 429 (max_conns_per_user 3)", resp.StatusCode)
	}
}
