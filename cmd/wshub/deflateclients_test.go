package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Real clients with --compression: npm's ws and Debian's python3-websockets,
// each with one connection that negotiates permessage-deflate and one that
// does not, headless Chromium (which always offers it) and a raw client
// that checks the frames themselves, all subscribed to one channel. They
// publish, compressed or not, as their libraries choose, and the admin API
// publishes a 200 KB JSON message and a small one: every subscriber gets
// every publication, byte for byte and in one order, and each publication
// above --compression-min-size (the default, 256 bytes) is compressed once
// for all the compressed subscribers.

const deflateChannel = "room:deflate"

// wsDeflateClient: ws-deflate negotiates (perMessageDeflate, ws's default,
// which compresses what it sends from 1 KiB up), ws-plain does not.
const wsDeflateClient = `
const WebSocket = require("ws");
const readline = require("readline");
const [url, channel] = process.argv.slice(1);
const stdin = readline.createInterface({input: process.stdin, crlfDelay: Infinity})[Symbol.asyncIterator]();
const say = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const conns = {};
// until resolves once pred holds, checked after each message.
const until = (name, pred) => new Promise((resolve, reject) => {
  const c = conns[name];
  const timer = setTimeout(() => reject(new Error(name + ": timed out with " + c.messages.length + " messages, replies " + c.replies)), 15000);
  c.check = () => { if (pred(c)) { clearTimeout(timer); c.check = null; resolve(); } };
  c.check();
});
const open = (name, perMessageDeflate) => new Promise((resolve, reject) => {
  const c = conns[name] = {ext: "", messages: [], replies: [], check: null};
  const ws = c.ws = new WebSocket(url, "wshub.v1", {perMessageDeflate});
  ws.on("upgrade", (res) => { c.ext = res.headers["sec-websocket-extensions"] || ""; });
  ws.on("message", (m) => {
    const s = m.toString();
    (JSON.parse(s).op === "message" ? c.messages : c.replies).push(s);
    if (c.check) c.check();
  });
  ws.on("error", (e) => reject(new Error(name + ": " + e.message)));
  ws.on("open", () => {
    ws.send(JSON.stringify({op: "subscribe", channel, id: 1}));
    until(name, (c) => c.replies.length >= 1).then(resolve, reject);
  });
});
(async () => {
  await Promise.all([open("ws-deflate", true), open("ws-plain", false)]);
  say({step: "subscribed"});
  const go = JSON.parse((await stdin.next()).value);
  for (const [name, data] of Object.entries(go.publish)) {
    conns[name].ws.send('{"op":"publish","channel":"' + channel + '","data":' + data + ',"id":2}');
  }
  await Promise.all(Object.keys(conns).map((name) =>
    until(name, (c) => c.messages.length >= go.messages && c.replies.length >= (name in go.publish ? 2 : 1))));
  const out = {};
  await Promise.all(Object.entries(conns).map(([name, c]) => new Promise((resolve) => {
    out[name] = {ext: c.ext, negotiated: c.ws.extensions, protocol: c.ws.protocol, messages: c.messages, replies: c.replies};
    c.ws.on("close", (code) => { out[name].close = code; resolve(); });
    c.ws.close(1000, "done");
  })));
  // Written to a pipe, stdout is asynchronous: exit once it is flushed.
  process.stdout.write(JSON.stringify({step: "result", conns: out}) + "\n", () => process.exit(0));
})().catch((e) => { console.error(e && e.stack || e); process.exit(1); });
`

// pyDeflateClient: py-deflate negotiates (compression="deflate", the
// default; websockets compresses every message it sends), py-plain does not
// (compression=None).
const pyDeflateClient = `
import asyncio, json, sys
import websockets

url, channel = sys.argv[1], sys.argv[2]

def say(o):
    sys.stdout.write(json.dumps(o) + "\n")
    sys.stdout.flush()

async def open_conn(compression):
    ws = await websockets.connect(url, subprotocols=["wshub.v1"], compression=compression,
                                  max_size=1 << 20, ping_interval=None)
    await ws.send(json.dumps({"op": "subscribe", "channel": channel, "id": 1}))
    reply = await asyncio.wait_for(ws.recv(), 10)
    return ws, {"ext": ws.response_headers.get("Sec-WebSocket-Extensions", ""),
                "negotiated": ",".join(e.name for e in ws.extensions),
                "protocol": ws.subprotocol, "messages": [], "replies": [reply]}

async def collect(ws, c, n, replies):
    while len(c["messages"]) < n or len(c["replies"]) < replies:
        s = await asyncio.wait_for(ws.recv(), 15)
        (c["messages"] if json.loads(s)["op"] == "message" else c["replies"]).append(s)
    await ws.close(1000, "done")
    c["close"] = ws.close_code

async def main():
    conns = dict(zip(["py-deflate", "py-plain"], await asyncio.gather(open_conn("deflate"), open_conn(None))))
    say({"step": "subscribed"})
    go = json.loads(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
    for name, data in go["publish"].items():
        await conns[name][0].send('{"op":"publish","channel":"%s","data":%s,"id":2}' % (channel, data))
    await asyncio.gather(*(collect(ws, c, go["messages"], 2 if name in go["publish"] else 1)
                           for name, (ws, c) in conns.items()))
    say({"step": "result", "conns": {name: c for name, (_, c) in conns.items()}})

asyncio.run(main())
`

// chromiumDeflateClient: one page's WebSocket (browserPage), which offers
// permessage-deflate as every Chromium does and compresses what it sends.
const chromiumDeflateClient = `
const { chromium } = require("playwright-core");
const readline = require("readline");
const [chromiumPath, pageURL, wsURL, userDir, channel] = process.argv.slice(1);
const stdin = readline.createInterface({input: process.stdin, crlfDelay: Infinity})[Symbol.asyncIterator]();
const say = (o) => process.stdout.write(JSON.stringify(o) + "\n");
(async () => {
  const ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: chromiumPath, headless: true, timeout: 15000,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on("console", (m) => console.error("page console:", m.text()));
    page.on("pageerror", (e) => console.error("page error:", e.message));
    await page.goto(pageURL, {timeout: 5000});
    const opened = await page.evaluate((url) => T.open(url), wsURL);
    const c = {ext: opened.extensions, negotiated: opened.extensions, protocol: opened.protocol};
    c.replies = [await page.evaluate((channel) => {
      T.ws.send(JSON.stringify({op: "subscribe", channel, id: 1}));
      return T.take("subscribe ok", (f) => f.op === "ok" && f.id === 1, 5000);
    }, channel)];
    say({step: "subscribed"});
    const line = await stdin.next();
    if (line.done) throw new Error("the test closed stdin");
    const go = JSON.parse(line.value);
    const r = await page.evaluate(async ([channel, data, n]) => {
      if (data !== undefined) T.ws.send('{"op":"publish","channel":"' + channel + '","data":' + data + ',"id":2}');
      const messages = [];
      for (let i = 0; i < n; i++) messages.push(await T.take("message " + i, (f) => f.op === "message", 15000));
      const replies = data === undefined ? [] : [await T.take("publish ok", (f) => f.op === "ok" && f.id === 2, 15000)];
      T.ws.close(1000, "done");
      const closed = await T.within("close event", T.closed, 5000);
      return {messages, replies, close: closed.code, leftover: T.frames};
    }, [channel, go.publish["chromium"], go.messages]);
    c.messages = r.messages;
    c.replies = c.replies.concat(r.replies, r.leftover);
    c.close = r.close;
    say({step: "result", conns: {chromium: c}});
  } finally {
    await ctx.close();
  }
})().catch((e) => { console.error(e && e.stack || e); process.exit(1); });
`

// deflatePeer is one connection's view, as its client script reports it.
type deflatePeer struct {
	Ext        string // the 101's Sec-WebSocket-Extensions
	Negotiated string // what the library says it negotiated
	Protocol   string
	Messages   []string // message frames, in order
	Replies    []string // every other frame: the subscribe and publish oks
	Close      int
}

// startClientScript runs a client script (browserSession's line protocol:
// JSON lines on stdout, a line on stdin where the test must act), bounded
// by ctx; SIGTERM first, so that playwright closes the browser it started.
func startClientScript(t *testing.T, ctx context.Context, dir string, argv ...string) *browserSession {
	t.Helper()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 3 * time.Second
	s := &browserSession{t: t, ctx: ctx, lines: make(chan string, 4), stderr: &syncBuffer{}}
	cmd.Stderr = s.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.stdin = stdin
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 32<<20)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil || t.Failed() {
			t.Logf("%s (%v) stderr:\n%s", argv[0], err, s.stderr.String())
		}
	})
	return s
}

// jsonRecords is a JSON array of about n bytes, compressible as live
// dashboards' JSON is (repeated keys, varying values).
func jsonRecords(tag string, n int) string {
	var b strings.Builder
	b.WriteString(`{"src":"` + tag + `","rows":[`)
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"user":"user-%d","online":%t,"score":%d.%02d,"tags":["alpha","beta"]}`, i, i*7%1000, i%3 == 0, i*31%977, i%100)
	}
	b.WriteString("]}")
	return b.String()
}

func TestCompressionRealClients(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	g := startGateway(t, "--compression", "--max-message", fmt.Sprint(512<<10))
	wsURL := "ws://" + g.addr + "/ws"

	// Who publishes what: client libraries compress what they send as they
	// choose (ws from 1 KiB, websockets and Chromium everything).
	type pub struct{ by, data string }
	pubs := []pub{
		{"admin", jsonRecords("admin-large", 200<<10)},
		{"admin", `{"src":"admin-small","n":[1,2.50,-3e2]}`},
	}
	var peers []*browserSession
	var deflateConns, plainConns []string
	assign := map[*browserSession]map[string]string{}
	publish := func(s *browserSession, by, data string) {
		if assign[s] == nil {
			assign[s] = map[string]string{} // a peer that publishes nothing gets {}
		}
		assign[s][by] = data
		pubs = append(pubs, pub{by, data})
	}
	var skipped []string
	if _, err := exec.LookPath("node"); err != nil {
		skipped = append(skipped, "npm ws and Chromium (no node)")
	} else {
		s := startClientScript(t, ctx, nodeWS(t), "node", "-e", wsDeflateClient, wsURL, deflateChannel)
		peers = append(peers, s)
		deflateConns, plainConns = append(deflateConns, "ws-deflate"), append(plainConns, "ws-plain")
		publish(s, "ws-deflate", jsonRecords("ws-deflate", 50<<10))
		publish(s, "ws-plain", jsonRecords("ws-plain", 1000))
		if _, err := os.Stat(chromiumPath); err != nil {
			skipped = append(skipped, "Chromium (no "+chromiumPath+")")
		} else {
			site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				fmt.Fprint(w, browserPage)
			}))
			t.Cleanup(site.Close)
			userDir := t.TempDir()
			s := startClientScript(t, ctx, playwrightDir(t), "node", "-e", chromiumDeflateClient, chromiumPath, site.URL+"/", wsURL, userDir, deflateChannel)
			peers = append(peers, s)
			deflateConns = append(deflateConns, "chromium")
			publish(s, "chromium", bigPublication())
		}
	}
	if exec.Command("/usr/bin/python3", "-c", "import websockets").Run() != nil {
		skipped = append(skipped, "python3-websockets (not installed)")
	} else {
		s := startClientScript(t, ctx, "", "/usr/bin/python3", "-c", pyDeflateClient, wsURL, deflateChannel)
		peers = append(peers, s)
		deflateConns, plainConns = append(deflateConns, "py-deflate"), append(plainConns, "py-plain")
		publish(s, "py-deflate", jsonRecords("py-deflate", 3000))
		publish(s, "py-plain", `{"src":"py-plain","small":true}`)
	}
	if len(peers) == 0 {
		t.Skip("no third-party client available: " + strings.Join(skipped, ", "))
	}
	if len(skipped) > 0 {
		t.Logf("not run: %s", strings.Join(skipped, ", "))
	}
	// The raw client sees the frames themselves.
	raw, ext := dialDeflate(t, g.addr, offerDeflate)
	if ext != acceptedDeflate {
		t.Fatalf("raw client: Sec-WebSocket-Extensions %q", ext)
	}
	raw.sendText(`{"op":"subscribe","channel":"` + deflateChannel + `","id":1}`)
	if m := raw.next(); m["op"] != "ok" {
		t.Fatalf("raw client subscribe: %v", m)
	}
	for _, s := range peers {
		s.expect("subscribed")
	}
	launched := time.Since(start)

	for _, s := range peers {
		b, _ := json.Marshal(map[string]any{"messages": len(pubs), "publish": assign[s]})
		if _, err := s.stdin.Write(append(b, '\n')); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range pubs {
		if p.by != "admin" {
			continue
		}
		if code, body := g.post("/api/publish", `{"channel":"`+deflateChannel+`","data":`+p.data+`}`); code != 200 {
			t.Fatalf("admin publish: %d %s", code, body)
		}
	}

	// The raw client's frames: RSV1 exactly on the messages from 256 bytes.
	const minSize = 256
	var order []string
	var plainBytes, compressedBytes, bigOnes int
	for len(order) < len(pubs) {
		f := raw.NextFrame()
		if f.Header.OpCode != ws.OpText || !f.Header.Fin {
			t.Fatalf("raw client: %+v", f.Header)
		}
		p := f.Payload
		if f.Header.Rsv != 0 {
			if f.Header.Rsv != ws.Rsv(true, false, false) {
				t.Fatalf("raw client: RSV %03b", f.Header.Rsv)
			}
			p = inflateFrame(t, p)
			compressedBytes += len(f.Payload)
		}
		if (f.Header.Rsv != 0) != (len(p) >= minSize) {
			t.Fatalf("raw client: a %d-byte message came with RSV %03b (--compression-min-size %d)", len(p), f.Header.Rsv, minSize)
		}
		if len(p) >= minSize {
			plainBytes += len(p)
			bigOnes++
		}
		order = append(order, string(p))
	}

	results := map[string]deflatePeer{}
	for _, s := range peers {
		var r struct{ Conns map[string]deflatePeer }
		if err := json.Unmarshal([]byte(s.expect("result")), &r); err != nil {
			t.Fatal(err)
		}
		for name, c := range r.Conns {
			results[name] = c
		}
	}
	t.Logf("%d publications (%d of them compressed, %d bytes to %d), %d compressed and %d plain subscribers besides the raw one; clients ready after %v, whole test %v",
		len(pubs), bigOnes, plainBytes, compressedBytes, len(deflateConns), len(plainConns), launched.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// Every publication reached the raw client once, byte for byte.
	for _, p := range pubs {
		n := 0
		for _, raw := range order {
			if string(frameFields(t, "message", raw)["data"]) == p.data {
				checkMessage(t, "publication by "+p.by, raw, deflateChannel, p.data)
				n++
			}
		}
		if n != 1 {
			t.Fatalf("the publication by %s (%d bytes) reached the raw client %d times", p.by, len(p.data), n)
		}
	}
	// Every other subscriber got the same messages in the same order, and
	// negotiated what it should have.
	for _, name := range slices.Concat(deflateConns, plainConns) {
		c, ok := results[name]
		if !ok {
			t.Fatalf("no result for %s", name)
		}
		compressed := slices.Contains(deflateConns, name)
		switch {
		case compressed && c.Ext != acceptedDeflate:
			t.Errorf("%s: Sec-WebSocket-Extensions %q, want %q", name, c.Ext, acceptedDeflate)
		case compressed && !strings.HasPrefix(c.Negotiated, "permessage-deflate"):
			t.Errorf("%s: the client says it negotiated %q", name, c.Negotiated)
		case !compressed && (c.Ext != "" || c.Negotiated != ""):
			t.Errorf("%s: negotiated %q (%q) without offering", name, c.Ext, c.Negotiated)
		}
		if c.Protocol != "wshub.v1" || c.Close != 1000 {
			t.Errorf("%s: subprotocol %q, close %d", name, c.Protocol, c.Close)
		}
		if !slices.Equal(c.Messages, order) {
			for i := range max(len(c.Messages), len(order)) {
				if i >= len(c.Messages) || i >= len(order) || c.Messages[i] != order[i] {
					t.Fatalf("%s: message %d of %d differs from the raw client's (%d of them)", name, i, len(c.Messages), len(order))
				}
			}
		}
		wantReplies := []string{`{"op":"ok","id":1}`}
		for _, p := range pubs {
			if p.by == name {
				wantReplies = append(wantReplies, `{"op":"ok","id":2}`)
			}
		}
		if !slices.Equal(c.Replies, wantReplies) {
			t.Errorf("%s: replies %.300q, want %q", name, c.Replies, wantReplies)
		}
	}

	// Compressed once per publication: compressions_total counts the
	// publications from 256 bytes (every reply is shorter), their input is
	// each message once, and every compressed subscriber, the raw one
	// included, got each of them compressed.
	subs := len(deflateConns) + 1
	metric := func(name string) float64 {
		v, ok := g.metricSum("wshub_eventloop_" + name)
		if !ok {
			t.Fatalf("no metric %s", name)
		}
		return v
	}
	compressions, frames, in, out, saved := metric("compressions_total"), metric("frames_compressed_total"),
		metric("compression_input_bytes_total"), metric("compression_output_bytes_total"), metric("compression_saved_bytes_total")
	t.Logf("metrics: %v compressions, %v compressed frames, %v bytes in, %v out, %v saved on the wire, %.3f ms compressing",
		compressions, frames, in, out, saved, metric("compression_seconds_total")*1e3)
	if compressions != float64(bigOnes) || metric("compressions_incompressible_total") != 0 {
		t.Errorf("%v compressions (%v incompressible) for %d publications from %d bytes", compressions, metric("compressions_incompressible_total"), bigOnes, minSize)
	}
	if in != float64(plainBytes) || out != float64(compressedBytes) {
		t.Errorf("compressor input %v and output %v bytes, want each publication once: %d and %d", in, out, plainBytes, compressedBytes)
	}
	if frames != float64(bigOnes*subs) {
		t.Errorf("%v compressed frames written, want %d publications x %d compressed subscribers", frames, bigOnes, subs)
	}
	// Each delivery saves the payload's difference and up to 8 bytes of
	// frame header (a 200 KB payload has a 10-byte header, its compressed
	// form maybe a 4-byte one).
	if d := saved - float64(subs)*(in-out); d < 0 || d > float64(subs*bigOnes*8) {
		t.Errorf("%v bytes saved on the wire, want %d x (%v - %v) plus header bytes", saved, subs, in, out)
	}
	if in < 3*out {
		t.Errorf("JSON compressed from %v to %v bytes only", in, out)
	}
}
