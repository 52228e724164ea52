// Package redistest starts throw-away redis-server processes (standalone or a
// 3-master cluster) on loopback ports reserved for the test (FreePort), and
// offers the few assertions Redis tests share. Tests skip when redis-server is not installed.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// Server is a redis-server process owned by one test.
type Server struct {
	t      testing.TB
	port   int
	args   []string
	log    string        // redis-server's --logfile
	cmd    *exec.Cmd     // nil when not running
	exited chan struct{} // closed once cmd has exited and was reaped
}

// Need skips the test when redis-server is not in PATH.
func Need(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not found in PATH: install it (make test-deps / apt-get install redis-server) to run the Redis tests")
	}
}

// FreePort reserves a loopback port, and its cluster bus port (port+10000)
// when bus is set, for the rest of the test, and returns it. Nothing listens
// there (a client is refused) until a redis-server is started on it.
//
// redis-server cannot be handed a listener, and --port 0 means "no TCP" to
// it, so the port has to be chosen here. Choosing it by listen-and-close
// would free it again until redis-server binds it, and a restarted server
// needs its port back after an outage. Instead the port stays bound to a
// socket of this process that never listens: it is bound without
// SO_REUSEADDR, which fails when any socket has the port (listening, bound
// or connected), so no other test's FreePort can pick it; then SO_REUSEADDR
// is set on it, so that redis-server (which binds with SO_REUSEADDR) can
// bind and listen beside it. What it cannot keep away is another program
// listening with SO_REUSEADDR while no redis-server does; Start detects
// that (the bind failure in redis-server's log, or another server
// answering) instead of talking to the wrong server.
//
// Both ports stay below Linux's ephemeral range (32768+), where outgoing
// connections take their local ports.
func FreePort(t testing.TB, bus bool) int {
	t.Helper()
	for range 200 {
		p := 10000 + rand.IntN(12000)
		fd, ok := reserve(t, p)
		if !ok {
			continue
		}
		fds := []int{fd}
		if bus {
			if fd, ok = reserve(t, p+10000); !ok {
				syscall.Close(fds[0])
				continue
			}
			fds = append(fds, fd)
		}
		t.Cleanup(func() {
			for _, fd := range fds {
				syscall.Close(fd)
			}
		})
		return p
	}
	t.Fatal("no free port")
	return 0
}

// reserve binds a socket to 127.0.0.1:port as FreePort describes and returns
// it; false when some socket already has the port.
func reserve(t testing.TB, port int) (int, bool) {
	t.Helper()
	// Not inherited by the redis-servers this process starts meanwhile.
	syscall.ForkLock.RLock()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return 0, false
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		syscall.Close(fd)
		t.Fatalf("SO_REUSEADDR: %v", err)
	}
	return fd, true
}

// errPortTaken is a redis-server that could not bind its port: another
// program has it.
var errPortTaken = errors.New("port taken by another process")

// Start starts a redis-server on a free loopback port (FreePort), with extra
// arguments appended; it is killed at cleanup. Persistence is off. Should
// another program have the port after all, it starts on another one.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	cluster := len(extra) > 0 && extra[0] == "--cluster-enabled"
	s := Prepare(t, 0, extra...)
	for attempt := 1; ; attempt++ {
		s.port = FreePort(t, cluster)
		err := s.launch()
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) || attempt == 10 {
			t.Fatal(err)
		}
		t.Logf("redis-server: %v; trying another port", err)
	}
}

// StartOn is Start on a given port (e.g. one from FreePort a gateway was
// already told to use); it fails the test when another program has the port.
func StartOn(t testing.TB, port int, extra ...string) *Server {
	t.Helper()
	s := Prepare(t, port, extra...)
	s.Start()
	return s
}

// Prepare returns a Server for port without starting it; Start starts it.
func Prepare(t testing.TB, port int, extra ...string) *Server {
	t.Helper()
	Need(t)
	dir := t.TempDir()
	s := &Server{t: t, port: port, log: filepath.Join(dir, "redis.log")}
	s.args = append([]string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--protected-mode", "no", "--dir", dir, "--loglevel", "warning", "--logfile", s.log}, extra...)
	t.Cleanup(s.Kill)
	return s
}

// Port is the server's TCP port.
func (s *Server) Port() int { return s.port }

// Addr is "127.0.0.1:<port>".
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL is "redis://127.0.0.1:<port>".
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Running reports whether the process was started and not killed.
func (s *Server) Running() bool { return s.cmd != nil }

// Start (re)starts the process on its port with its arguments and waits until
// it accepts connections. A restarted server keeps its port (clients were
// told it): when another program took it meanwhile, the test fails saying so.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.launch(); err != nil {
		s.t.Fatal(err)
	}
}

// launch starts the process and waits until it answers on its port as
// itself (INFO's process_id is its pid: not another server that has the
// port). errPortTaken: it exited because it could not bind its port.
func (s *Server) launch() error {
	var logged int64
	if fi, err := os.Stat(s.log); err == nil {
		logged = fi.Size() // earlier runs' lines (the log is appended to)
	}
	args := append([]string{"--port", strconv.Itoa(s.port)}, s.args...)
	cmd := exec.Command("redis-server", args...)
	// Output goes to --logfile in the test's temp dir.
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	newLog := func() string {
		b, _ := os.ReadFile(s.log)
		return string(b[min(logged, int64(len(b))):])
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		select {
		case <-exited:
			s.cmd = nil
			log := newLog()
			if strings.Contains(log, "Address already in use") {
				return fmt.Errorf("redis-server on %d: %w:\n%s", s.port, errPortTaken, log)
			}
			return fmt.Errorf("redis-server on %d exited at start (%v):\n%s", s.port, cmd.ProcessState, log)
		default:
		}
		if pid, err := serverPID(s.Addr()); err == nil && pid == cmd.Process.Pid {
			return nil
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("redis-server on %d did not come up within 5s:\n%s", s.port, newLog())
		}
		time.Sleep(10 * time.Millisecond) // paces the polling
	}
}

// serverPID asks the Redis server at addr for its process_id (INFO server),
// over a plain connection: whatever listens there, this gives up after a
// second.
func serverPID(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"); err != nil {
		return 0, err
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(head, "$")))
	if !strings.HasPrefix(head, "$") || err != nil || n < 0 {
		return 0, fmt.Errorf("INFO answered %q", head)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(body), "\r\n") {
		if v, ok := strings.CutPrefix(line, "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO server without process_id")
}

// Kill is kill -9 (and reaping), also of a stopped process; safe to call twice.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Signal sends sig (e.g. SIGSTOP, SIGCONT) to the process.
func (s *Server) Signal(sig syscall.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
}

// Client is an independent client for assertions and admin commands, closed
// at cleanup.
func (s *Server) Client() rueidis.Client {
	s.t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr()}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(c.Close)
	return c
}

// Do runs one command on a fresh connection with a 5 s timeout.
func (s *Server) Do(args ...string) rueidis.RedisResult {
	s.t.Helper()
	c := s.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Do(ctx, c.B().Arbitrary(args[0]).Args(args[1:]...).Build())
}

// NumSub is PUBSUB NUMSUB (SHARDNUMSUB when shard) of one channel.
func NumSub(t testing.TB, c rueidis.Client, channel string, shard bool) int64 {
	t.Helper()
	return NumSubs(t, c, shard, channel)[0]
}

// NumSubs is PUBSUB NUMSUB (SHARDNUMSUB when shard) of several channels in
// one call (on a cluster they must share a slot, or be asked node by node).
func NumSubs(t testing.TB, c rueidis.Client, shard bool, channels ...string) []int64 {
	t.Helper()
	sub := "NUMSUB"
	if shard {
		sub = "SHARDNUMSUB"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := c.Do(ctx, c.B().Arbitrary("PUBSUB", sub).Args(channels...).Build()).ToArray()
	if err != nil || len(v) != 2*len(channels) {
		t.Fatalf("PUBSUB %s (%d channels): %v %v", sub, len(channels), len(v), err)
	}
	out := make([]int64, len(channels))
	for i := range out {
		out[i], _ = v[2*i+1].AsInt64()
	}
	return out
}

// CommandCalls reads the calls= count of one command from INFO commandstats.
func CommandCalls(t testing.TB, c rueidis.Client, cmd string) int64 {
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

// Cluster is a Redis Cluster of 3 masters (plus replicas) made with
// redis-cli --cluster create.
type Cluster struct {
	// Nodes are the servers in creation order (masters first).
	Nodes []*Server
}

// StartCluster creates a 3-master cluster with replicas replicas per master
// and waits until every node reports cluster_state:ok and replicas are in sync.
func StartCluster(t testing.TB, replicas int) *Cluster {
	t.Helper()
	Need(t)
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Skip("redis-cli not found in PATH: needed to create the test cluster")
	}
	c := &Cluster{}
	args := []string{"--cluster", "create"}
	for range 3 * (1 + replicas) {
		n := Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000", "--repl-diskless-sync-delay", "0")
		c.Nodes = append(c.Nodes, n)
		args = append(args, n.Addr())
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range c.Nodes {
		for {
			info, _ := n.Do("CLUSTER", "INFO").ToString()
			if strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster not ok on %s: %s", n.Addr(), info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// A replica only fails over once it has synced with its master.
	for _, n := range c.Nodes {
		for {
			info, _ := n.Do("INFO", "replication").ToString()
			if strings.Contains(info, "role:master") || strings.Contains(info, "master_link_status:up") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %s not in sync: %s", n.Addr(), info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// Addrs are the nodes' addresses, in Nodes order.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Addr())
	}
	return out
}

// Owner returns the index of the node serving slot (as the first node sees
// it) and the node ids of every node, in Nodes order.
func (c *Cluster) Owner(t testing.TB, slot uint16) (int, []string) {
	t.Helper()
	return c.OwnerSeenBy(t, slot, 0)
}

// OwnerSeenBy is Owner as node by sees it.
func (c *Cluster) OwnerSeenBy(t testing.TB, slot uint16, by int) (int, []string) {
	t.Helper()
	ids := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		if n.Running() {
			ids[i], _ = n.Do("CLUSTER", "MYID").ToString()
		}
	}
	slots, err := c.Nodes[by].Do("CLUSTER", "SLOTS").ToArray()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range slots {
		v, _ := e.ToArray()
		lo, _ := v[0].AsInt64()
		hi, _ := v[1].AsInt64()
		node, _ := v[2].ToArray()
		port, _ := node[1].AsInt64()
		if int64(slot) < lo || int64(slot) > hi {
			continue
		}
		for i, n := range c.Nodes {
			if n.port == int(port) {
				return i, ids
			}
		}
	}
	return -1, ids
}

// MoveSlot moves a slot from node from to node to, as redis-cli --cluster
// reshard does: CLUSTER SETSLOT IMPORTING and MIGRATING, MIGRATE of the
// slot's keys, then SETSLOT NODE on every node.
func (c *Cluster) MoveSlot(t testing.TB, slot uint16, from, to int, ids []string) {
	t.Helper()
	s := strconv.Itoa(int(slot))
	type step struct {
		node int
		args []string
	}
	run := func(steps ...step) {
		t.Helper()
		for _, st := range steps {
			if err := c.Nodes[st.node].Do(st.args...).Error(); err != nil {
				t.Fatalf("%v on %s: %v", st.args, c.Nodes[st.node].Addr(), err)
			}
		}
	}
	run(step{to, []string{"CLUSTER", "SETSLOT", s, "IMPORTING", ids[from]}},
		step{from, []string{"CLUSTER", "SETSLOT", s, "MIGRATING", ids[to]}})
	for {
		keys, err := c.Nodes[from].Do("CLUSTER", "GETKEYSINSLOT", s, "100").AsStrSlice()
		if err != nil {
			t.Fatalf("CLUSTER GETKEYSINSLOT %s: %v", s, err)
		}
		if len(keys) == 0 {
			break
		}
		args := append([]string{"MIGRATE", "127.0.0.1", strconv.Itoa(c.Nodes[to].Port()), "", "0", "5000", "KEYS"}, keys...)
		run(step{from, args})
	}
	steps := []step{
		{to, []string{"CLUSTER", "SETSLOT", s, "NODE", ids[to]}},
		{from, []string{"CLUSTER", "SETSLOT", s, "NODE", ids[to]}},
	}
	for i := range c.Nodes {
		if i != from && i != to {
			steps = append(steps, step{i, []string{"CLUSTER", "SETSLOT", s, "NODE", ids[to]}})
		}
	}
	run(steps...)
}

// KeySlot asks the cluster for the hash slot of key (CLUSTER KEYSLOT).
func (c *Cluster) KeySlot(t testing.TB, key string) uint16 {
	t.Helper()
	n, err := c.Nodes[0].Do("CLUSTER", "KEYSLOT", key).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	return uint16(n)
}

func (c *Cluster) String() string { return fmt.Sprint(c.Addrs()) }

// Eventually polls cond every 5 ms until it holds and returns how long that
// took; it fails the test after d. Recovery tests use the duration as their
// measurement.
func Eventually(t testing.TB, d time.Duration, cond func() bool, what string) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}
