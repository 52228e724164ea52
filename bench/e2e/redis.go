package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// redisProc is a throw-away redis-server this runner started on a free
// loopback port (never 6379, never a server someone else runs), with
// persistence off, for one run.
type redisProc struct {
	cmd    *exec.Cmd
	addr   string
	exited chan struct{}
}

// haveRedis reports whether redis-server is on PATH.
func haveRedis() bool {
	_, err := exec.LookPath("redis-server")
	return err == nil
}

// startRedis starts redis-server with its files and log in dir and waits
// until it answers PING.
func startRedis(ctx context.Context, dir string) (*redisProc, error) {
	var addr string
	for {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		if !strings.HasSuffix(a, ":6379") { // the default port: someone's real Redis
			addr = a
			break
		}
	}
	_, port, _ := net.SplitHostPort(addr)
	rdir, err := os.MkdirTemp(dir, "redis-"+port+"-")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--protected-mode", "yes", "--dir", rdir, "--loglevel", "warning", "--logfile", filepath.Join(rdir, "redis.log"))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %v", err)
	}
	r := &redisProc{cmd: cmd, addr: addr, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(r.exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-r.exited:
			log, _ := os.ReadFile(filepath.Join(rdir, "redis.log"))
			return nil, fmt.Errorf("redis-server on %s exited at start; its log:\n%s", addr, log)
		default:
		}
		if ping(addr) == nil {
			return r, nil
		}
		if time.Now().After(deadline) {
			r.stop()
			return nil, fmt.Errorf("redis-server on %s did not answer PING within 10s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping sends one inline PING and wants +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// url is the --redis value for the gateways.
func (r *redisProc) url() string { return "redis://" + r.addr }

func (r *redisProc) pid() int { return r.cmd.Process.Pid }

// stop sends SIGTERM and, if it lingers, SIGKILL.
func (r *redisProc) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}
