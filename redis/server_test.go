package redis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// testServer is a redis-server process owned by one test.
type testServer struct {
	t    testing.TB
	port int
	dir  string
	args []string
	cmd  *exec.Cmd
}

func needRedis(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not found in PATH: install it (make test-deps / apt-get install redis-server) to run the Redis tests")
	}
}

// freePort finds a loopback port that is free, and whose cluster bus port
// (port+10000) is free too when bus is set. Both stay below Linux's ephemeral
// range (32768+), where outgoing connections could take them meanwhile.
func freePort(t testing.TB, bus bool) int {
	t.Helper()
	for range 200 {
		p := 10000 + rand.IntN(12000)
		if !portFree(p) || (bus && !portFree(p+10000)) {
			continue
		}
		return p
	}
	t.Fatal("no free port")
	return 0
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// startRedis starts a throw-away redis-server on a free loopback port; it is
// killed at cleanup.
func startRedis(t testing.TB, extra ...string) *testServer {
	t.Helper()
	needRedis(t)
	cluster := len(extra) > 0 && extra[0] == "--cluster-enabled"
	s := &testServer{t: t, port: freePort(t, cluster), dir: t.TempDir()}
	s.args = append([]string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--protected-mode", "no", "--dir", s.dir, "--loglevel", "warning", "--logfile", filepath.Join(s.dir, "redis.log")}, extra...)
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *testServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }
func (s *testServer) url() string  { return "redis://" + s.addr() }

func (s *testServer) start() {
	s.t.Helper()
	args := append([]string{"--port", strconv.Itoa(s.port)}, s.args...)
	cmd := exec.Command("redis-server", args...)
	// Output goes to --logfile in the test's temp dir.
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", s.addr(), 100*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Fatalf("redis-server on %d did not come up", s.port)
}

// kill is kill -9 (and reaping); safe to call twice.
func (s *testServer) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

func (s *testServer) signal(sig syscall.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
}

// client is an independent client for assertions and admin commands.
func (s *testServer) client() rueidis.Client {
	s.t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.addr()}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(c.Close)
	return c
}

func (s *testServer) do(args ...string) rueidis.RedisResult {
	s.t.Helper()
	c := s.client()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Do(ctx, c.B().Arbitrary(args[0]).Args(args[1:]...).Build())
}

// numsub is PUBSUB NUMSUB (SHARDNUMSUB when shard) of one channel.
func numsub(t testing.TB, c rueidis.Client, channel string, shard bool) int64 {
	t.Helper()
	sub := "NUMSUB"
	if shard {
		sub = "SHARDNUMSUB"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := c.Do(ctx, c.B().Arbitrary("PUBSUB", sub).Args(channel).Build()).ToArray()
	if err != nil || len(v) != 2 {
		t.Fatalf("PUBSUB %s %s: %v %v", sub, channel, v, err)
	}
	n, _ := v[1].AsInt64()
	return n
}

// commandCalls reads the calls= count of one command from INFO commandstats.
func commandCalls(t testing.TB, c rueidis.Client, cmd string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := c.Do(ctx, c.B().Info().Section("commandstats").Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+strings.ToLower(cmd)+":calls="); ok {
			n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
			return n
		}
	}
	return 0
}

// testCluster is a 3-master Redis Cluster made with redis-cli --cluster create.
type testCluster struct {
	nodes []*testServer
}

func startCluster(t testing.TB, replicas int) *testCluster {
	t.Helper()
	needRedis(t)
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Skip("redis-cli not found in PATH: needed to create the test cluster")
	}
	c := &testCluster{}
	args := []string{"--cluster", "create"}
	for range 3 * (1 + replicas) {
		n := startRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000", "--repl-diskless-sync-delay", "0")
		c.nodes = append(c.nodes, n)
		args = append(args, n.addr())
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range c.nodes {
		for {
			info, _ := n.do("CLUSTER", "INFO").ToString()
			if strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster not ok on %s: %s", n.addr(), info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// A replica only fails over once it has synced with its master.
	for _, n := range c.nodes {
		for {
			info, _ := n.do("INFO", "replication").ToString()
			if strings.Contains(info, "role:master") || strings.Contains(info, "master_link_status:up") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %s not in sync: %s", n.addr(), info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

func (c *testCluster) addrs() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.addr())
	}
	return out
}

// owner returns the node serving slot (as the first node sees it) and the
// node ids of every node, in c.nodes order.
func (c *testCluster) owner(t testing.TB, slot uint16) (int, []string) {
	t.Helper()
	return c.ownerSeenBy(t, slot, 0)
}

func (c *testCluster) ownerSeenBy(t testing.TB, slot uint16, by int) (int, []string) {
	t.Helper()
	ids := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		if n.cmd != nil {
			ids[i], _ = n.do("CLUSTER", "MYID").ToString()
		}
	}
	slots, err := c.nodes[by].do("CLUSTER", "SLOTS").ToArray()
	must(t, err)
	for _, e := range slots {
		v, _ := e.ToArray()
		lo, _ := v[0].AsInt64()
		hi, _ := v[1].AsInt64()
		node, _ := v[2].ToArray()
		port, _ := node[1].AsInt64()
		if int64(slot) < lo || int64(slot) > hi {
			continue
		}
		for i, n := range c.nodes {
			if n.port == int(port) {
				return i, ids
			}
		}
	}
	return -1, ids
}

// moveSlot moves an empty slot from node from to node to with CLUSTER SETSLOT,
// telling every node, as redis-cli --cluster reshard does.
func (c *testCluster) moveSlot(t testing.TB, slot uint16, from, to int, ids []string) {
	t.Helper()
	s := strconv.Itoa(int(slot))
	must(t, c.nodes[to].do("CLUSTER", "SETSLOT", s, "IMPORTING", ids[from]).Error())
	must(t, c.nodes[from].do("CLUSTER", "SETSLOT", s, "MIGRATING", ids[to]).Error())
	must(t, c.nodes[to].do("CLUSTER", "SETSLOT", s, "NODE", ids[to]).Error())
	must(t, c.nodes[from].do("CLUSTER", "SETSLOT", s, "NODE", ids[to]).Error())
	for i, n := range c.nodes {
		if i != from && i != to {
			must(t, n.do("CLUSTER", "SETSLOT", s, "NODE", ids[to]).Error())
		}
	}
}

func (c *testCluster) String() string { return fmt.Sprint(c.addrs()) }
