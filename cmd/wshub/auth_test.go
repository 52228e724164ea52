package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wshub/wshub/hub/auth"
)

const testSecret = "a-test-secret-of-at-least-32-bytes!"

// mint signs claims with testSecret.
func mint(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// upgradeStatus sends an upgrade with the given path and extra headers and
// returns the HTTP status; on 101 the connection is returned open.
func upgradeStatus(t *testing.T, addr, path string, extra ...string) (int, *client) {
	t.Helper()
	resp, c := tryUpgrade(t, addr, path, extra...)
	return resp.StatusCode, c
}

// TestAuthRefusesBadTokens: every kind of bad token is a 401 before the
// upgrade, in the query and in the header, and the gateway goes on serving.
func TestAuthRefusesBadTokens(t *testing.T) {
	g := startGateway(t, "--jwt-secret", testSecret, "--jwt-issuer", "https://issuer.test", "--jwt-audience", "wshub")
	now := time.Now().Unix()
	good := jwt.MapClaims{"sub": "alice", "exp": now + 3600, "iss": "https://issuer.test", "aud": "wshub"}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, good).SignedString([]byte("another-secret-of-at-least-32-bytes"))
	head := base64.RawURLEncoding.EncodeToString
	payload, _ := json.Marshal(good)
	algNone := head([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + head(payload) + "."
	cases := map[string]string{
		"malformed":     "not.a.token",
		"forged":        forged,
		"alg none":      algNone,
		"expired":       mint(t, with("exp", now-60)),
		"not yet valid": mint(t, with("nbf", now+600)),
		"wrong issuer":  mint(t, with("iss", "https://evil.test")),
		"wrong aud":     mint(t, with("aud", "other")),
		"no sub":        mint(t, with("sub", nil)),
		"empty sub":     mint(t, with("sub", "")),
	}
	for name, tok := range cases {
		if code, _ := upgradeStatus(t, g.addr, "/ws?token="+tok); code != 401 {
			t.Errorf("%s in the query: %d, want 401", name, code)
		}
		if code, _ := upgradeStatus(t, g.addr, "/ws", "Authorization: Bearer "+tok); code != 401 {
			t.Errorf("%s in the header: %d, want 401", name, code)
		}
	}
	if code, _ := upgradeStatus(t, g.addr, "/ws"); code != 401 {
		t.Errorf("no token: %d, want 401", code)
	}
	// The header wins over the query; the scheme is case-insensitive.
	if code, _ := upgradeStatus(t, g.addr, "/ws?token="+mint(t, good), "Authorization: bearer "+forged); code != 401 {
		t.Errorf("forged header, good query: %d, want 401 (the header wins)", code)
	}
	code, c := upgradeStatus(t, g.addr, "/ws?token="+forged, "Authorization: BEARER "+mint(t, good))
	if code != 101 {
		t.Fatalf("good header, forged query: %d, want 101", code)
	}
	c.sendText(`{"op":"subscribe","channel":"room","id":1}`)
	if m := c.next(); m["op"] != "ok" {
		t.Fatalf("subscribe after auth: %v", m)
	}
	if n, _ := g.metricSum("wshub_hub_upgrades_refused_total"); n < float64(2*len(cases)+2) {
		t.Fatalf("upgrades_refused_total = %v, want at least %d", n, 2*len(cases)+2)
	}
}

// TestAuthPermissions checks the namespace modes through the real gateway:
// each refusal is error 403 and leaves the connection open.
func TestAuthPermissions(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "wshub.yaml")
	os.WriteFile(file, []byte(`
auth:
  jwt_secret: [`+testSecret+`]
  allow_anonymous: true
default_namespace: {subscribe: authenticated, publish: authenticated}
namespaces:
  public: {subscribe: anyone, publish: nobody}
  room: {subscribe: token, publish: subscribers}
  dm: {subscribe: nobody, publish: subscribers}
`), 0o600)
	g := startGateway(t, "--config", file)
	alice := dialPath(t, g.addr, "/ws?token="+mint(t, jwt.MapClaims{"sub": "alice", "channels": []string{"room:1", "public:*", "dm:*", "lobby"}}))
	anon := dialPath(t, g.addr, "/ws")
	expect := func(c *client, cmd string, code float64) { t.Helper(); expectReply(t, c, cmd, code) }
	expect(anon, `{"op":"subscribe","channel":"public:news","id":1}`, 0)
	expect(anon, `{"op":"subscribe","channel":"lobby","id":2}`, 403)
	expect(anon, `{"op":"publish","channel":"public:news","data":1,"id":3}`, 403)
	expect(alice, `{"op":"subscribe","channel":"lobby","id":1}`, 0)
	expect(alice, `{"op":"subscribe","channel":"room:1","id":2}`, 0)
	expect(alice, `{"op":"subscribe","channel":"room:2","id":3}`, 403) // not in the token's channels
	expect(alice, `{"op":"publish","channel":"room:1","data":"hi","id":4}`, 0)
	if m := alice.next(); m["op"] != "message" && m["op"] != "ok" {
		t.Fatalf("publish on room:1: %v", m)
	}
	expect(alice, `{"op":"subscribe","channel":"dm:#alice,bob","id":5}`, 0) // user-limited: whatever the namespace says
	expect(alice, `{"op":"subscribe","channel":"dm:#bob,carol","id":6}`, 403)
	expect(alice, `{"op":"subscribe","channel":"other:1","id":7}`, 403) // outside the channels claim
	// Both connections are still open and served.
	for _, c := range []*client{anon, alice} {
		c.sendText(`{"op":"ping","id":9}`)
		if m := c.next(); m["op"] != "pong" {
			t.Fatalf("ping after refusals: %v", m)
		}
	}
}

// TestAuthExpiryAndRefresh: a connection is closed with 1008 within a second
// of exp + leeway; refresh moves the expiry, and one with another sub is
// refused and leaves the old expiry standing.
func TestAuthExpiryAndRefresh(t *testing.T) {
	g := startGateway(t, "--jwt-secret", testSecret, "--jwt-leeway", "0s", "--ping-interval", "1h")
	exp := time.Now().Add(2 * time.Second)
	c := dialPath(t, g.addr, "/ws?token="+mint(t, jwt.MapClaims{"sub": "alice", "exp": exp.Unix()}))
	c.sendText(`{"op":"refresh","token":"` + mint(t, jwt.MapClaims{"sub": "mallory", "exp": exp.Unix() + 60}) + `","id":1}`)
	if m := c.next(); m["op"] != "error" || m["code"] != 403.0 {
		t.Fatalf("refresh with another sub: %v", m)
	}
	c.sendText(`{"op":"refresh","token":"garbage","id":2}`)
	if m := c.next(); m["op"] != "error" || m["code"] != 401.0 {
		t.Fatalf("refresh with a bad token: %v", m)
	}
	c.expectClose(ws.StatusPolicyViolation)
	if late := time.Since(exp.Truncate(time.Second)); late > 1100*time.Millisecond || late < 0 {
		t.Fatalf("closed %v after exp, want within a second", late)
	}

	// A good refresh keeps the connection past its first exp.
	exp = time.Now().Add(2 * time.Second)
	d := dialPath(t, g.addr, "/ws?token="+mint(t, jwt.MapClaims{"sub": "bob", "exp": exp.Unix()}))
	d.sendText(`{"op":"refresh","token":"` + mint(t, jwt.MapClaims{"sub": "bob", "exp": exp.Unix() + 2}) + `","id":1}`)
	if m := d.next(); m["op"] != "ok" {
		t.Fatalf("refresh: %v", m)
	}
	// Due up to 4 s from now plus the wheel's second: more than the
	// client's default read timeout leaves on a loaded machine.
	d.ExpectCloseWithin(uint16(ws.StatusPolicyViolation), true, 10*time.Second)
	d.ExpectEOF(5 * time.Second)
	if early := time.Until(exp.Add(2 * time.Second).Truncate(time.Second)); early > 0 {
		t.Fatalf("closed %v before the refreshed exp", early)
	}
}

func noEnv(string) (string, bool) { return "", false }

// TestAuthMintedTokenWorks: wshub token mints what the gateway accepts.
func TestAuthMintedTokenWorks(t *testing.T) {
	var out, errOut strings.Builder
	if code := tokenCommand([]string{"--jwt-secret", testSecret, "--sub", "carol", "--channels", "room:*", "--ttl", "1h"}, noEnv, &out, &errOut); code != 0 {
		t.Fatalf("wshub token: %d %s", code, errOut.String())
	}
	tok := strings.TrimSpace(out.String())
	v, err := auth.New(auth.Config{Secrets: [][]byte{[]byte(testSecret)}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	claims, err := v.Verify(tok)
	if err != nil || claims.Sub != "carol" || len(claims.Channels) != 1 || claims.Expires.IsZero() {
		t.Fatalf("minted token: %+v, %v", claims, err)
	}
	g := startGateway(t, "--jwt-secret", testSecret)
	c := dialPath(t, g.addr, "/ws?token="+tok)
	c.sendText(`{"op":"subscribe","channel":"room:9","id":1}`)
	if m := c.next(); m["op"] != "ok" {
		t.Fatalf("subscribe with the minted token: %v", m)
	}
}

// TestAdminAPIKeys: with keys, every /api/* call needs one; health stays open.
func TestAdminAPIKeys(t *testing.T) {
	g := startGateway(t, "--admin-api-key", "k1,k2")
	if code, _ := g.post("/api/publish", `{"channel":"a","data":1}`); code != 401 {
		t.Fatalf("no key: %d, want 401", code)
	}
	for _, h := range [][2]string{{"Authorization", "Bearer k2"}, {"X-API-Key", "k1"}} {
		req, _ := http.NewRequest("POST", "http://"+g.admin+"/api/publish", strings.NewReader(`{"channel":"a","data":1}`))
		req.Header.Set(h[0], h[1])
		if code, body := g.answer(http.DefaultClient.Do(req)); code != 200 {
			t.Fatalf("%s: %d %s", h[0], code, body)
		}
	}
	req, _ := http.NewRequest("POST", "http://"+g.admin+"/api/publish", strings.NewReader(`{"channel":"a","data":1}`))
	req.Header.Set("X-API-Key", "k3")
	if code, _ := g.answer(http.DefaultClient.Do(req)); code != 401 {
		t.Fatalf("wrong key: %d", code)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _ := g.get(p); code != 200 {
			t.Fatalf("%s: %d, want 200 without a key", p, code)
		}
	}
}
