package main

import (
	"bytes"
	"io"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wshub/wshub/bench/refhub"
	"github.com/wshub/wshub/loadtest"
	"github.com/wshub/wshub/loadtest/testserver"
)

const testSecret = "wsload-test-secret-of-32-bytes!!"

func TestTokenFlags(t *testing.T) {
	o, err := parseFlags([]string{"idle", "--conns", "3", "--jwt-secret", testSecret, "--jwt-channels", "room:*, news", "--jwt-channels", "*",
		"--jwt-ttl", "10m", "--jwt-header"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c := o.cfg; c.JWTSecret != testSecret || !slices.Equal(c.JWTChannels, []string{"room:*", "news", "*"}) || c.JWTTTL != 10*time.Minute || !c.TokenHeader || c.Token != "" {
		t.Errorf("secret %q channels %q ttl %v header %v token %q", c.JWTSecret, c.JWTChannels, c.JWTTTL, c.TokenHeader, c.Token)
	}
	o, err = parseFlags([]string{"churn", "--conns", "3", "--jwt-secret", testSecret}, io.Discard)
	if err != nil || o.cfg.JWTTTL != time.Hour || o.cfg.JWTChannels != nil || o.cfg.TokenHeader {
		t.Errorf("defaults: %v, ttl %v channels %q header %v", err, o.cfg.JWTTTL, o.cfg.JWTChannels, o.cfg.TokenHeader)
	}
	o, err = parseFlags([]string{"fanout", "--subs", "3", "--token", "abc.def.ghi"}, io.Discard)
	if err != nil || o.cfg.Token != "abc.def.ghi" || o.cfg.JWTSecret != "" {
		t.Errorf("--token: %v, %+v", err, o.cfg)
	}
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"--jwt-secret", testSecret, "--token", "x"}, "--jwt-secret and --token are exclusive"},
		{[]string{"--jwt-channels", "*"}, "--jwt-channels needs --jwt-secret"},
		{[]string{"--jwt-ttl", "5m"}, "--jwt-ttl needs --jwt-secret"},
		{[]string{"--jwt-secret", testSecret, "--jwt-ttl", "0s"}, "--jwt-ttl must be positive"},
		{[]string{"--jwt-header"}, "--jwt-header needs --jwt-secret or --token"},
		{[]string{"--jwt-secret", testSecret, "--jwt-channels", "room*"}, `"room*" is not a channel name`},
		{[]string{"--token", "a b"}, "printable ASCII without spaces"},
		{[]string{"--jwt-secret", testSecret, "--target", "ws://127.0.0.1:1/ws?token=old"}, "already carries token="},
	} {
		var out, errb bytes.Buffer
		args := append([]string{"idle", "--conns", "1"}, c.args...)
		if code := run(args, &out, &errb); code != 2 || !strings.Contains(errb.String(), c.err) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, errb.String(), c.err)
		}
	}
}

// TestSummaryNamesTokens: the summary says what the upgrades presented,
// and how many minted tokens were not ready before the run.
func TestSummaryNamesTokens(t *testing.T) {
	for _, c := range []struct {
		cfg  loadtest.Config
		res  loadtest.Result
		want string
	}{
		{loadtest.Config{}, loadtest.Result{}, ""},
		{loadtest.Config{JWTSecret: "s"}, loadtest.Result{Tokens: &loadtest.TokenStats{Preminted: 500, DuringRun: 20}},
			"HS256, one per connection, in ?token=; 500 minted before the run, 20 during it"},
		{loadtest.Config{JWTSecret: "s", TokenHeader: true}, loadtest.Result{},
			"HS256, one per connection, in Authorization: Bearer; 0 minted before the run, 0 during it"},
		{loadtest.Config{Token: "t", TokenHeader: true}, loadtest.Result{}, "one fixed token (--token) in Authorization: Bearer"},
	} {
		var out bytes.Buffer
		c.res.Scenario = loadtest.ScenarioIdle
		printSummary(&out, &c.res, &c.cfg)
		got := ""
		for _, line := range strings.Split(out.String(), "\n") {
			if v, ok := strings.CutPrefix(line, "  tokens         "); ok {
				got = v
			}
		}
		if got != c.want {
			t.Errorf("token secret %q fixed %q header %v: tokens row %q, want %q", c.cfg.JWTSecret, c.cfg.Token, c.cfg.TokenHeader, got, c.want)
		}
	}
}

// TestWorkerProcessesMintDistinctSubs runs the real binary with --procs 2:
// each worker mints its own tokens, and every connection of the run comes
// in with a sub of its own, wsload-0 to wsload-N-1.
func TestWorkerProcessesMintDistinctSubs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildWsload(t)
	h := refhub.New()
	go h.Run()
	g, err := testserver.NewAuthGate(testSecret, h.Handler())
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(g)
	defer func() { s.CloseClientConnections(); s.Close(); h.Stop(); g.Close() }()
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	cmd := exec.Command(bin, "idle", "--procs", "2", "--target", strings.TrimPrefix(s.URL, "http://"), "--conns", "20",
		"--duration", "100ms", "--jwt-secret", testSecret, "--json", jsonPath, "--max-errors", "0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("wsload --procs 2: %v\n%s", err, out)
	}
	subs := g.Subs()
	for i := range 20 {
		if where := subs["wsload-"+strconv.Itoa(i)]; where != "query" {
			t.Errorf("wsload-%d: %q", i, where)
		}
	}
	if len(subs) != 20 {
		t.Errorf("%d subs: %v", len(subs), subs)
	}
	if r := readResult(t, jsonPath); r.Connected != 20 || r.Tokens == nil || r.Tokens.Preminted != 20 || r.Tokens.DuringRun != 0 {
		t.Errorf("connected %d, tokens %+v", r.Connected, r.Tokens)
	}
}

// TestTokensAgainstTheGateway runs the real wshub with --jwt-secret: tokens
// minted with its secret, in the query or the header, let every connection
// in; a wrong secret gets every upgrade refused with 401, counted as such.
func TestTokensAgainstTheGateway(t *testing.T) {
	gw := buildGateway(t)
	if !gatewayHasFlag(t, gw, "jwt-secret") {
		t.Skip("this wshub has no --jwt-secret flag yet (it is being added on its own branch)")
	}
	addr, _ := startGateway(t, gw, "--loops", "2", "--jwt-secret", testSecret)
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	for _, extra := range [][]string{{"--jwt-secret", testSecret}, {"--jwt-secret", testSecret, "--jwt-header"}} {
		var out, errb bytes.Buffer
		args := append([]string{"idle", "--target", "ws://" + addr + "/ws", "--conns", "10", "--duration", "100ms",
			"--quiet", "--json", jsonPath, "--max-errors", "0"}, extra...)
		code := run(args, &out, &errb)
		if r := readResult(t, jsonPath); code != 0 || r.Connected != 10 || r.Errors != 0 {
			t.Fatalf("%v: exit %d, connected %d, errors %v, refused %v\n%s%s", extra, code, r.Connected, r.ErrorsByKind, r.Refused, out.String(), errb.String())
		}
	}
	var out, errb bytes.Buffer
	code := run([]string{"idle", "--target", addr, "--conns", "10", "--duration", "100ms", "--quiet", "--json", jsonPath,
		"--max-errors", "0", "--jwt-secret", "not-" + testSecret}, &out, &errb)
	r := readResult(t, jsonPath)
	if code != 1 || r.Connected != 0 || r.Refused["401"] != 10 || r.ErrorsByKind["refused"] != 10 || r.Errors != 10 {
		t.Fatalf("wrong secret: exit %d, connected %d, refused %v, errors %v; want exit 1 and 10 refused with 401\n%s", code, r.Connected, r.Refused, r.ErrorsByKind, errb.String())
	}
	if !strings.Contains(out.String(), "  refused        401 Unauthorized 10\n") {
		t.Errorf("summary does not show the refusals:\n%s", out.String())
	}
}
