package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The integration tests run the real wshub binary, built once, on loopback
// ports it binds itself (port 0), and talk to it over real sockets.
var wshubBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wshub-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	wshubBin = filepath.Join(dir, "wshub")
	if out, err := exec.Command("go", "build", "-o", wshubBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building wshub: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects a child's log output safely.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// gateway is one running wshub process.
type gateway struct {
	t     *testing.T
	cmd   *exec.Cmd
	addr  string // host:port of the WebSocket listener, once waitUp(true) returned
	admin string // host:port of the admin listener, once waitUp returned
	logs  *syncBuffer
	done  chan struct{}
	err   error // set when done is closed

	// What the "wshub listening" line said, set by the output's writer.
	mu                  sync.Mutex
	boundWS, boundAdmin string
}

// The gateway binds port 0 for both listeners and reports the ports the
// kernel chose in its "wshub listening" line (serve.go): no port is chosen
// by the test and released before the child binds it, so none can be taken
// by another process in between.
const listeningMsg = "wshub listening"

// gatewayOutput is the child's stdout and stderr (one writer, so one pipe
// and one goroutine writing): it keeps the log and reads the addresses off
// the "wshub listening" line.
type gatewayOutput struct {
	g    *gateway
	line []byte // an unfinished line
}

func (o *gatewayOutput) Write(p []byte) (int, error) {
	o.g.logs.Write(p)
	o.line = append(o.line, p...)
	for {
		i := bytes.IndexByte(o.line, '\n')
		if i < 0 {
			return len(p), nil
		}
		if ws, admin, ok := parseListening(string(o.line[:i])); ok {
			o.g.mu.Lock()
			o.g.boundWS, o.g.boundAdmin = ws, admin
			o.g.mu.Unlock()
		}
		o.line = o.line[i+1:]
	}
}

// parseListening reads addr and admin from a "wshub listening" line, in the
// text or the JSON log format.
func parseListening(line string) (ws, admin string, ok bool) {
	if strings.HasPrefix(line, "{") {
		var m struct{ Msg, Addr, Admin string }
		if json.Unmarshal([]byte(line), &m) != nil || m.Msg != listeningMsg {
			return "", "", false
		}
		return m.Addr, m.Admin, m.Addr != ""
	}
	if !strings.Contains(line, `msg="`+listeningMsg+`"`) {
		return "", "", false
	}
	for _, f := range strings.Fields(line) {
		k, v, _ := strings.Cut(f, "=")
		if u, err := strconv.Unquote(v); err == nil {
			v = u
		}
		switch k {
		case "addr":
			ws = v
		case "admin":
			admin = v
		}
	}
	return ws, admin, ws != ""
}

// startGateway runs wshub with args added to small, test-friendly defaults
// and waits until it serves both listeners.
func startGateway(t *testing.T, args ...string) *gateway {
	t.Helper()
	return startGatewayFDLimit(t, 0, args...)
}

// startGatewayFDLimit is startGateway with the process's open-file limit
// (soft and hard) lowered to nofile, as an operator's ulimit would; 0 keeps
// the test's own limit.
func startGatewayFDLimit(t *testing.T, nofile int, args ...string) *gateway {
	t.Helper()
	g := launchGatewayFDLimit(t, nofile, args...)
	g.waitListening(true)
	return g
}

// launchGateway starts wshub without waiting for it; it is killed at
// cleanup. Its addresses are known once waitListening returned.
func launchGateway(t *testing.T, args ...string) *gateway {
	t.Helper()
	return launchGatewayFDLimit(t, 0, args...)
}

// launchGatewayFDLimit is launchGateway under prlimit(1) when nofile > 0;
// prlimit execs wshub, so the process (and its pid) is the gateway's.
func launchGatewayFDLimit(t *testing.T, nofile int, args ...string) *gateway {
	t.Helper()
	g := &gateway{t: t, logs: &syncBuffer{}, done: make(chan struct{})}
	full := append([]string{"--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--loops", "2", "--log-level", "debug"}, args...)
	if nofile > 0 {
		full = append([]string{fmt.Sprintf("--nofile=%d:%d", nofile, nofile), "--", wshubBin}, full...)
		g.cmd = exec.Command("prlimit", full...)
	} else {
		g.cmd = exec.Command(wshubBin, full...)
	}
	out := &gatewayOutput{g: g}
	g.cmd.Stdout, g.cmd.Stderr = out, out
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.err = g.cmd.Wait(); close(g.done) }()
	t.Cleanup(func() {
		select {
		case <-g.done:
		default:
			_ = g.cmd.Process.Kill()
			<-g.done
		}
		if t.Failed() {
			t.Logf("wshub logs:\n%s", g.logs.String())
		}
	})
	return g
}

// waitListening waits until /healthz answers 200 and, with ws set, the
// WebSocket listener accepts connections; it fails the test otherwise.
func (g *gateway) waitListening(ws bool) {
	g.t.Helper()
	if err := g.waitUp(ws); err != nil {
		g.t.Fatal(err)
	}
}

// waitUp is waitListening reporting instead of failing. It sets g.addr (with
// ws) and g.admin: from the "wshub listening" line, logged once both
// listeners serve; without ws, before that line, the admin listener is the
// process's only listening socket (it is opened first, the WebSocket
// listener only once the broker is up; see serve.go).
func (g *gateway) waitUp(ws bool) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		if g.learnAddrs(ws) {
			up := true
			if ws {
				c, err := net.DialTimeout("tcp", g.addr, time.Second)
				if up = err == nil; up {
					c.Close()
				}
			}
			if up {
				if resp, err := http.Get("http://" + g.admin + "/healthz"); err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						return nil
					}
				}
			}
		}
		select {
		case <-g.done:
			return fmt.Errorf("wshub exited at start: %v\n%s", g.err, g.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wshub did not start listening\n%s", g.logs.String())
		}
		time.Sleep(30 * time.Millisecond) // paces the polling until it serves
	}
}

// learnAddrs sets g.addr and g.admin from the "wshub listening" line, or
// (without ws, before that line) g.admin from the one listening socket; it
// reports whether what waitUp needs is known.
func (g *gateway) learnAddrs(ws bool) bool {
	g.mu.Lock()
	bws, badmin := g.boundWS, g.boundAdmin
	g.mu.Unlock()
	if bws != "" {
		g.addr, g.admin = bws, badmin
		return true
	}
	if ws {
		return false
	}
	if ports := g.listenPorts(); len(ports) == 1 {
		g.admin = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		return true
	}
	return false
}

// listenPorts returns the TCP ports the gateway process has listening
// sockets on, sorted and each once (the WebSocket listener has a socket per
// loop), read from /proc: the sockets among its descriptors that
// /proc/PID/net/tcp{,6} lists in state LISTEN.
func (g *gateway) listenPorts() []int {
	pid := g.cmd.Process.Pid
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, _ := os.ReadDir(fdDir)
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); ok && err == nil {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	seen := map[int]bool{}
	var ports []int
	for _, table := range []string{"tcp", "tcp6"} {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		for _, line := range strings.Split(string(b), "\n") {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			p, err := strconv.ParseUint(hexPort, 16, 16)
			if err == nil && !seen[int(p)] {
				seen[int(p)] = true
				ports = append(ports, int(p))
			}
		}
	}
	sort.Ints(ports)
	return ports
}

// signal sends sig to the gateway process.
func (g *gateway) signal(sig syscall.Signal) {
	g.t.Helper()
	if err := g.cmd.Process.Signal(sig); err != nil {
		g.t.Fatal(err)
	}
}

// waitExit waits for the process to exit and returns its exit code.
func (g *gateway) waitExit(within time.Duration) int {
	g.t.Helper()
	select {
	case <-g.done:
	case <-time.After(within):
		g.t.Fatalf("wshub did not exit within %v", within)
	}
	return g.cmd.ProcessState.ExitCode()
}

// rssKiB reads the gateway's resident set size.
func (g *gateway) rssKiB() int {
	g.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		g.t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kb int
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")), "%d", &kb)
			return kb
		}
	}
	g.t.Fatal("no VmRSS")
	return 0
}

// get fetches an admin path and returns status and body.
func (g *gateway) get(path string) (int, string) {
	g.t.Helper()
	return g.answer(http.Get("http://" + g.admin + path))
}

// post sends a JSON body to an admin path.
func (g *gateway) post(path, body string) (int, string) {
	g.t.Helper()
	return g.answer(http.Post("http://"+g.admin+path, "application/json", strings.NewReader(body)))
}

// admin_ reads an admin API answer.
func (g *gateway) answer(resp *http.Response, err error) (int, string) {
	g.t.Helper()
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// metricSum adds up every sample of name on /metrics, whatever its labels;
// ok is false when there is none.
func (g *gateway) metricSum(name string) (sum float64, ok bool) {
	g.t.Helper()
	hc := http.Client{Timeout: 3 * time.Second}
	resp, err := hc.Get("http://" + g.admin + "/metrics")
	if err != nil {
		g.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		rest, found := strings.CutPrefix(line, name)
		if !found || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if rest[0] == '{' {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				g.t.Fatalf("metric line %q", line)
			}
			rest = rest[end+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			g.t.Fatalf("metric line %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			g.t.Fatalf("metric line %q: %v", line, err)
		}
		sum, ok = sum+v, true
	}
	return sum, ok
}
