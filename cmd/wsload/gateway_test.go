package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildGateway compiles ./cmd/wshub into the test's temporary directory.
func buildGateway(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs wshub")
	}
	bin := filepath.Join(t.TempDir(), "wshub")
	if out, err := exec.Command("go", "build", "-o", bin, "../wshub").CombinedOutput(); err != nil {
		t.Fatalf("building wshub: %v\n%s", err, out)
	}
	return bin
}

// writeGatewayConfig writes yaml as a gateway configuration file in dir.
func writeGatewayConfig(t *testing.T, dir, yaml string) string {
	t.Helper()
	conf := filepath.Join(dir, "wshub.yaml")
	if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return conf
}

// gatewayHasFlag reports whether the gateway binary lists flag in its -h.
func gatewayHasFlag(t *testing.T, bin, flag string) bool {
	t.Helper()
	out, _ := exec.Command(bin, "-h").CombinedOutput() // -h may exit non-zero
	for _, line := range strings.Split(string(out), "\n") {
		// "  -name type" or "  -name" (a bool), as flag.PrintDefaults writes them
		if f := strings.Fields(line); len(f) > 0 && f[0] == "-"+flag {
			return true
		}
	}
	return false
}

// startGateway runs the gateway binary with args on loopback until the
// test ends and returns its WebSocket and admin addresses, once both serve.
// Both listeners are on port 0: the gateway reports the ports it got in its
// "wshub listening" line, so no port is chosen here and released before the
// child binds it.
func startGateway(t *testing.T, bin string, args ...string) (addr, admin string) {
	t.Helper()
	gw := &gatewayOutput{bound: make(chan [2]string, 1)}
	cmd := exec.Command(bin, append([]string{"--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--log-format", "json"}, args...)...)
	cmd.Stdout, cmd.Stderr = gw, gw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("wshub logs:\n%s", gw)
		}
	})
	select {
	case a := <-gw.bound:
		addr, admin = a[0], a[1]
	case <-done:
		t.Fatalf("wshub exited at start:\n%s", gw)
	case <-time.After(15 * time.Second):
		t.Fatalf("no %q line within 15s", listeningMsg)
	}
	// The line comes once both listeners serve.
	resp, err := http.Get("http://" + admin + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/healthz after %q: %d", listeningMsg, resp.StatusCode)
	}
	return addr, admin
}

// listeningMsg is the line wshub logs with its bound addresses once both
// listeners serve (cmd/wshub/serve.go).
const listeningMsg = "wshub listening"

// gatewayOutput is the gateway's stdout and stderr (one writer, so one pipe
// and one goroutine writing): it keeps the log (JSON lines) and sends the
// addresses of the "wshub listening" line on bound.
type gatewayOutput struct {
	mu    sync.Mutex
	log   bytes.Buffer
	line  []byte // an unfinished line
	bound chan [2]string
	sent  bool
}

func (o *gatewayOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.log.Write(p)
	o.line = append(o.line, p...)
	for {
		i := bytes.IndexByte(o.line, '\n')
		if i < 0 {
			return len(p), nil
		}
		var m struct{ Msg, Addr, Admin string }
		if json.Unmarshal(o.line[:i], &m) == nil && m.Msg == listeningMsg && !o.sent {
			o.sent = true
			o.bound <- [2]string{m.Addr, m.Admin}
		}
		o.line = o.line[i+1:]
	}
}

func (o *gatewayOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.log.String()
}
