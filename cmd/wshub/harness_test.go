package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The integration tests run the real wshub binary, built once, on free
// loopback ports, and talk to it over real sockets.
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
	addr  string // host:port of the WebSocket listener
	admin string // host:port of the admin listener
	logs  *syncBuffer
	done  chan struct{}
	err   error // set when done is closed
}

// freeAddrs reserves n distinct loopback ports long enough to learn their
// numbers: all listeners stay open until every port is chosen, so two calls
// in a row cannot hand out the same port.
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs[i] = ln.Addr().String()
	}
	return addrs
}

// startGateway runs wshub with args added to small, test-friendly defaults
// and waits until it serves both listeners. A port taken by another process
// between reserving and binding it is retried with fresh ports.
func startGateway(t *testing.T, args ...string) *gateway {
	t.Helper()
	return startGatewayFDLimit(t, 0, args...)
}

// startGatewayFDLimit is startGateway with the process's open-file limit
// (soft and hard) lowered to nofile, as an operator's ulimit would; 0 keeps
// the test's own limit.
func startGatewayFDLimit(t *testing.T, nofile int, args ...string) *gateway {
	t.Helper()
	for attempt := 1; ; attempt++ {
		g := launchGatewayFDLimit(t, nofile, args...)
		err := g.waitUp(true)
		if err == nil {
			return g
		}
		if attempt == 3 || !strings.Contains(g.logs.String(), "address already in use") {
			t.Fatal(err)
		}
	}
}

// launchGateway starts wshub without waiting for it; it is killed at cleanup.
func launchGateway(t *testing.T, args ...string) *gateway {
	t.Helper()
	return launchGatewayFDLimit(t, 0, args...)
}

// launchGatewayFDLimit is launchGateway under prlimit(1) when nofile > 0;
// prlimit execs wshub, so the process (and its pid) is the gateway's.
func launchGatewayFDLimit(t *testing.T, nofile int, args ...string) *gateway {
	t.Helper()
	ports := freeAddrs(t, 2)
	g := &gateway{t: t, addr: ports[0], admin: ports[1], logs: &syncBuffer{}, done: make(chan struct{})}
	full := append([]string{"--addr", g.addr, "--admin-addr", g.admin, "--loops", "2", "--log-level", "debug"}, args...)
	if nofile > 0 {
		full = append([]string{fmt.Sprintf("--nofile=%d:%d", nofile, nofile), "--", wshubBin}, full...)
		g.cmd = exec.Command("prlimit", full...)
	} else {
		g.cmd = exec.Command(wshubBin, full...)
	}
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
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

// waitUp is waitListening reporting instead of failing.
func (g *gateway) waitUp(ws bool) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
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
		select {
		case <-g.done:
			return fmt.Errorf("wshub exited at start: %v\n%s", g.err, g.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wshub did not start listening\n%s", g.logs.String())
		}
		time.Sleep(30 * time.Millisecond)
	}
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
