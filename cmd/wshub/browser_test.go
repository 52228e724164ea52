package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// This test drives the gateway from a real browser, as a user's page would:
// Debian's headless Chromium, steered by npm's playwright-core (which drives
// an installed browser and never downloads one).

const (
	chromiumPath      = "/usr/bin/chromium"
	playwrightVersion = "1.65.1"
)

// playwrightDir returns a directory whose node_modules holds npm's
// playwright-core, installed once and kept in os.TempDir() across runs.
func playwrightDir(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("%s is missing (make test installs Debian's chromium as root); skipping the browser test", chromiumPath)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed; skipping the browser test")
	}
	dir := filepath.Join(os.TempDir(), "wshub-test-playwright")
	var pkg struct{ Version string }
	if b, err := os.ReadFile(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err == nil &&
		json.Unmarshal(b, &pkg) == nil && pkg.Version == playwrightVersion {
		return dir
	}
	os.MkdirAll(dir, 0o755)
	cmd := exec.Command("npm", "install", "--no-audit", "--no-fund", "--silent", "playwright-core@"+playwrightVersion)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install playwright-core: %v\n%s", err, out)
	}
	return dir
}

// browserPage is the user's page. T keeps every frame the socket received;
// T.take hands out (and removes) the first one a predicate accepts, so
// whatever is left at the end was unexpected.
const browserPage = `<!doctype html>
<meta charset="utf-8">
<title>wshub browser test</title>
<script>
const T = window.T = {frames: [], waiters: []};
T.open = (url) => new Promise((resolve, reject) => {
  const ws = T.ws = new WebSocket(url, "wshub.v1");
  T.closed = new Promise((r) => ws.addEventListener("close",
    (e) => r({code: e.code, reason: e.reason, wasClean: e.wasClean})));
  ws.onmessage = (e) => {
    T.frames.push(typeof e.data === "string" ? e.data : "<binary frame>");
    T.waiters = T.waiters.filter((w) => !w());
  };
  ws.onerror = () => reject(new Error("WebSocket error before open"));
  ws.onopen = () => resolve({protocol: ws.protocol, extensions: ws.extensions});
});
T.take = (what, pred, ms) => new Promise((resolve, reject) => {
  const check = () => {
    const i = T.frames.findIndex((f) => { try { return pred(JSON.parse(f)); } catch { return false; } });
    if (i < 0) return false;
    clearTimeout(timer);
    resolve(T.frames.splice(i, 1)[0]);
    return true;
  };
  const timer = setTimeout(() => reject(new Error("no " + what + " within " + ms + " ms; frames: " +
    JSON.stringify(T.frames).slice(0, 500))), ms);
  if (!check()) T.waiters.push(check);
});
T.within = (what, p, ms) => Promise.race([p, new Promise((_, reject) =>
  setTimeout(() => reject(new Error("no " + what + " within " + ms + " ms")), ms))]);
</script>
`

// browserClient launches Chromium, opens the page and reports each step as
// one JSON line on stdout; it waits for a line on stdin wherever the Go test
// must act (publish through the admin API, stop the gateway).
const browserClient = `
const { chromium } = require("playwright-core");
const readline = require("readline");
const [chromiumPath, pageURL, wsURL, userDir, browserData] = process.argv.slice(1);
const stdin = readline.createInterface({input: process.stdin})[Symbol.asyncIterator]();
const say = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const t0 = Date.now();
const ms = {};
const mark = (name) => { ms[name] = Date.now() - t0; };

(async () => {
  const ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: chromiumPath, headless: true, timeout: 15000,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    mark("launched");
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on("console", (m) => console.error("page console:", m.text()));
    page.on("pageerror", (e) => console.error("page error:", e.message));
    await page.goto(pageURL, {timeout: 5000});
    const r = {userAgent: await page.evaluate(() => navigator.userAgent)};
    Object.assign(r, await page.evaluate((url) => T.open(url), wsURL));
    mark("open");
    r.subscribeOk = await page.evaluate(() => {
      T.ws.send(JSON.stringify({op: "subscribe", channel: "room:browser", id: 1}));
      return T.take("subscribe ok", (f) => f.op === "ok" && f.id === 1, 5000);
    });
    mark("subscribed");
    say({step: "subscribed"});
    if ((await stdin.next()).done) throw new Error("the test closed stdin");
    r.adminMessage = await page.evaluate(() => T.take("published message", (f) => f.op === "message", 5000));
    mark("adminMessage");
    // The browser decides itself whether to fragment this ~20 KiB message.
    Object.assign(r, await page.evaluate(async (data) => {
      T.ws.send('{"op":"publish","channel":"room:browser","data":' + data + ',"id":2}');
      const [echo, ok] = await Promise.all([
        T.take("own message", (f) => f.op === "message", 5000),
        T.take("publish ok", (f) => f.op === "ok" && f.id === 2, 5000),
      ]);
      return {echoMessage: echo, publishOk: ok};
    }, browserData));
    mark("echoed");
    say({step: "published"});
    r.close = await page.evaluate(() => T.within("close event", T.closed, 10000));
    mark("closed");
    r.leftover = await page.evaluate(() => T.frames);
    r.ms = ms;
    say({step: "result", result: r});
  } finally {
    await ctx.close();
  }
})().catch((e) => { console.error(e && e.stack || e); process.exit(1); });
`

// browserResult is what the page saw, raw frames included.
type browserResult struct {
	UserAgent    string
	Protocol     string
	Extensions   string
	SubscribeOk  string
	AdminMessage string
	EchoMessage  string
	PublishOk    string
	Close        struct {
		Code     int
		Reason   string
		WasClean bool
	}
	Leftover []string
	Ms       map[string]int
}

// browserSession is the running node + Chromium process, read line by line.
type browserSession struct {
	t      *testing.T
	ctx    context.Context
	stdin  io.Writer
	lines  chan string
	stderr *syncBuffer
}

// startBrowser runs browserClient against the gateway; everything it does is
// bounded by ctx, whose end stops node (playwright then closes Chromium).
func startBrowser(t *testing.T, ctx context.Context, dir, pageURL, wsURL, browserData string) *browserSession {
	t.Helper()
	userDir, err := os.MkdirTemp("", "wshub-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the script's own cleanup has waited
	// for the browser; Chromium may still be flushing its profile, and a
	// leftover is harmless.
	t.Cleanup(func() { os.RemoveAll(userDir) })
	s := startClientScript(t, ctx, dir, "node", "-e", browserClient, chromiumPath, pageURL, wsURL, userDir, browserData)
	return s
}

// expect waits for the browser to report step and returns the line.
func (s *browserSession) expect(step string) string {
	s.t.Helper()
	select {
	case line, ok := <-s.lines:
		if !ok {
			s.t.Fatalf("browser ended before step %q (its stderr follows)", step)
		}
		var m struct{ Step string }
		if err := json.Unmarshal([]byte(line), &m); err != nil || m.Step != step {
			s.t.Fatalf("browser said %.300q, want step %q", line, step)
		}
		return line
	case <-s.ctx.Done():
		s.t.Fatalf("no step %q from the browser in time (its stderr follows)", step)
	}
	return ""
}

// proceed tells the browser the Go side has done its part.
func (s *browserSession) proceed() {
	s.t.Helper()
	if _, err := s.stdin.Write([]byte("go\n")); err != nil {
		s.t.Fatal(err)
	}
}

// frameFields decodes one raw reply frame, keeping each value's raw bytes.
func frameFields(t *testing.T, what, raw string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("%s is not a JSON object: %v: %.300q", what, err, raw)
	}
	return m
}

// checkMessage asserts that raw is a message frame on channel whose data is
// byte for byte the published JSON.
func checkMessage(t *testing.T, what, raw, channel, data string) {
	t.Helper()
	m := frameFields(t, what, raw)
	if string(m["op"]) != `"message"` || string(m["channel"]) != `"`+channel+`"` {
		t.Fatalf("%s: op %s channel %s, want message on %s", what, m["op"], m["channel"], channel)
	}
	if got := string(m["data"]); got != data {
		t.Fatalf("%s: data is not byte for byte what was published:\n got %.300q (%d bytes)\nwant %.300q (%d bytes)",
			what, got, len(got), data, len(data))
	}
	for k := range m {
		if k != "op" && k != "channel" && k != "data" && k != "offset" {
			t.Fatalf("%s: unexpected field %q in %.300q", what, k, raw)
		}
	}
}

// checkOk asserts that raw is the ok answer for id.
func checkOk(t *testing.T, what, raw string, id int) {
	t.Helper()
	m := frameFields(t, what, raw)
	if string(m["op"]) != `"ok"` || string(m["id"]) != fmt.Sprint(id) {
		t.Fatalf("%s: %.300q, want ok with id %d", what, raw, id)
	}
}

// bigPublication is the ~20 KiB publication the page sends: non-ASCII in every
// UTF-8 length, so a fragment boundary may fall inside a character.
func bigPublication() string {
	var b strings.Builder
	b.WriteString(`{"blob":"`)
	for b.Len() < 20<<10 {
		b.WriteString("wshub → ü € 𝄞 ")
	}
	b.WriteString(`","n":[1,{"deep":"ß"}]}`)
	return b.String()
}

func TestBrowserChromium(t *testing.T) {
	dir := playwrightDir(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	t.Cleanup(cancel)

	g := startGateway(t, "--shutdown-timeout", "5s")
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, browserPage)
	}))
	t.Cleanup(site.Close)

	// Whitespace, escapes and a trailing zero survive only if the gateway
	// passes data through untouched: a JSON round trip would change them.
	adminData := `{"text":"héllo wörld — 日本語 🎉 \"q\" \u00e9\\","nested":{"list":[1, 2.50,-3e2,null,true],"obj":{"k":{}}} ,"empty" : [ ]}`
	bigData := bigPublication()

	b := startBrowser(t, ctx, dir, site.URL+"/", "ws://"+g.addr+"/ws", bigData)
	b.expect("subscribed")
	if code, body := g.post("/api/publish", `{"channel":"room:browser","data":`+adminData+`}`); code != 200 {
		t.Fatalf("admin publish: %d %s", code, body)
	}
	b.proceed()
	b.expect("published")
	g.signal(syscall.SIGTERM)
	deadline, _ := ctx.Deadline()
	if code := g.waitExit(min(10*time.Second, time.Until(deadline))); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	var res struct{ Result browserResult }
	if err := json.Unmarshal([]byte(b.expect("result")), &res); err != nil {
		t.Fatal(err)
	}
	r := res.Result
	t.Logf("%s; page timings (ms since node start): %v; whole test %v", r.UserAgent, r.Ms, time.Since(start).Round(time.Millisecond))

	if r.Protocol != "wshub.v1" {
		t.Errorf("ws.protocol = %q, want wshub.v1 echoed", r.Protocol)
	}
	if r.Extensions != "" {
		t.Errorf("ws.extensions = %q, want none (compression is off by default)", r.Extensions)
	}
	checkOk(t, "subscribe answer", r.SubscribeOk, 1)
	checkMessage(t, "admin publication", r.AdminMessage, "room:browser", adminData)
	checkMessage(t, "the page's own 20 KiB publication", r.EchoMessage, "room:browser", bigData)
	checkOk(t, "publish answer", r.PublishOk, 2)
	if r.Close.Code != 1001 || !r.Close.WasClean {
		t.Errorf("close event: code %d wasClean %v reason %q, want 1001 and a clean close", r.Close.Code, r.Close.WasClean, r.Close.Reason)
	}
	if len(r.Leftover) != 0 {
		t.Errorf("unexpected frames: %.500q", r.Leftover)
	}
}
