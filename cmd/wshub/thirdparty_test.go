package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// These tests drive the gateway with widely used third-party clients, as a
// user would: npm's ws and Python's websockets.

// nodeWS returns a directory whose node_modules holds npm's ws package.
func nodeWS(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed; skipping the npm ws client test")
	}
	dir := filepath.Join(os.TempDir(), "wshub-test-npm")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ws")); err == nil {
		return dir
	}
	os.MkdirAll(dir, 0o755)
	cmd := exec.Command("npm", "install", "--no-audit", "--no-fund", "--silent", "ws@8")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install ws: %v\n%s", err, out)
	}
	return dir
}

const nodeClient = `
const WebSocket = require("ws");
const ws = new WebSocket(process.argv[1], "wshub.v1");
const seen = [];
ws.on("open", () => ws.send(JSON.stringify({op: "subscribe", channel: "room:node", id: 1})));
ws.on("message", (m, isBinary) => {
  const r = JSON.parse(m.toString());
  if (r.op === "ok" && r.id === 1) {
    if (ws.protocol !== "wshub.v1") { console.error("subprotocol", ws.protocol); process.exit(3); }
    // A fragmented publish, as ws sends with fin=false.
    const msg = JSON.stringify({op: "publish", channel: "room:node", data: {text: "héllo", big: "x".repeat(3000)}, id: 2});
    ws.send(msg.slice(0, 10), {fin: false});
    ws.send(msg.slice(10), {fin: true});
  }
  if (r.op === "message") seen.push(r.data.text);
  if (seen.length === 1 && r.op === "message") ws.close(1000, "done");
});
ws.on("close", (code) => { console.log(JSON.stringify({code, seen})); process.exit(code === 1000 ? 0 : 4); });
ws.on("error", (e) => { console.error(e.message); process.exit(5); });
setTimeout(() => { console.error("timeout"); process.exit(6); }, 8000);
`

func TestNodeWSClient(t *testing.T) {
	dir := nodeWS(t)
	g := startGateway(t)
	cmd := exec.Command("node", "-e", nodeClient, "ws://"+g.addr+"/ws")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node ws client: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"seen":["héllo"]`) || !strings.Contains(string(out), `"code":1000`) {
		t.Fatalf("node ws client output: %s", out)
	}
}

const pyClient = `
import asyncio, json, sys
import websockets

async def main(url):
    async with websockets.connect(url, ping_interval=0.2, ping_timeout=2) as ws:
        await ws.send(json.dumps({"op": "subscribe", "channel": "room:py", "id": 1}))
        assert json.loads(await ws.recv()) == {"op": "ok", "id": 1}
        # A fragmented message: websockets sends an iterable as fragments.
        parts = ['{"op":"publish",', '"channel":"room:py",', '"data":[1,2,3],"id":2}']
        await ws.send(iter(parts))
        got = [json.loads(await ws.recv()) for _ in range(2)]
        got.sort(key=lambda m: m["op"])
        assert got == [{"op": "message", "channel": "room:py", "data": [1, 2, 3]}, {"op": "ok", "id": 2}], got
        await asyncio.sleep(0.6)  # library keepalive pings must be answered
        await ws.send(json.dumps({"op": "ping", "id": 3}))
        assert json.loads(await ws.recv()) == {"op": "pong", "id": 3}
    print("close", ws.close_code)

asyncio.run(main(sys.argv[1]))
`

func TestPythonWebsocketsClient(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import websockets").Run(); err != nil {
		t.Skip("Debian's python3-websockets is not installed (make test installs it as root)")
	}
	g := startGateway(t)
	cmd := exec.Command(py, "-c", pyClient, "ws://"+g.addr+"/ws")
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("python client hung: %s", out)
	}
	if err != nil || !strings.Contains(string(out), "close 1000") {
		t.Fatalf("python websockets client: %v\n%s", err, out)
	}
}
