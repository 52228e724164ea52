package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/wshub/wshub/loadtest"
)

type resultT = loadtest.Result

// serverSpec is a gateway binary taking --addr and --admin-addr, and the
// further arguments each instance gets.
type serverSpec struct {
	name string
	bin  string
	args []string
}

// server is one running instance.
type server struct {
	cmd        *exec.Cmd
	addr       string
	admin      string
	exited     chan struct{}
	stderrFile *os.File
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// buildAll compiles the three binaries into dir.
func buildAll(ctx context.Context, dir string) error {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
		return fmt.Errorf("run from inside the wshub module (go env GOMOD: %v)", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	for name, pkg := range map[string]string{"wshub": "./cmd/wshub", "refhub": "./bench/cmd/refhub", "wsload": "./cmd/wsload"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, name), pkg)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return nil
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startServer starts s on free loopback ports and waits until it accepts.
func startServer(ctx context.Context, s serverSpec, workDir string, stderr io.Writer) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logf, err := os.CreateTemp(workDir, s.name+"-*.log")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, s.bin, append([]string{"--addr", addr, "--admin-addr", admin}, s.args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %v", s.name, err)
	}
	srv := &server{cmd: cmd, addr: addr, admin: admin, exited: make(chan struct{}), stderrFile: logf}
	go func() { _ = cmd.Wait(); close(srv.exited) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-srv.exited:
			return nil, fmt.Errorf("%s exited at start; its log:\n%s", s.name, srv.log())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return srv, nil
		}
		if time.Now().After(deadline) {
			srv.stop()
			return nil, fmt.Errorf("%s did not listen on %s within 15s", s.name, addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and, if the server lingers, SIGKILL.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.stderrFile.Close()
}

func (s *server) log() string {
	b, _ := os.ReadFile(s.stderrFile.Name())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// runWsload runs one wsload scenario and reads its JSON result. Its
// summary goes to stderr so the person running the bench sees each run.
func runWsload(ctx context.Context, bin string, args []string, jsonPath string, stderr io.Writer) (*resultT, error) {
	cmd := exec.CommandContext(ctx, bin, append(args, "--json", jsonPath, "--quiet")...)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("wsload %v: %v", args, err)
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return nil, err
	}
	var r resultT
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("wsload result %s: %v", jsonPath, err)
	}
	return &r, nil
}
