package redistest

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
)

// A reserved port refuses connections, cannot be reserved again, and a
// redis-server started on it binds it; after a kill it refuses again and the
// restarted server gets it back.
func TestReservedPortServesOnlyItsServer(t *testing.T) {
	Need(t)
	port := FreePort(t, false)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("a reserved port accepted a connection")
	}
	if fd, ok := reserve(t, port); ok {
		t.Fatalf("port %d reserved twice (fd %d)", port, fd)
	}
	s := StartOn(t, port)
	if v, err := s.Do("PING").ToString(); err != nil || v != "PONG" {
		t.Fatalf("PING: %q %v", v, err)
	}
	s.Kill()
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("the port of a killed server accepted a connection")
	}
	s.Start()
	if v, err := s.Do("PING").ToString(); err != nil || v != "PONG" {
		t.Fatalf("PING after the restart: %q %v", v, err)
	}
}

// A redis-server whose port another program listens on is told apart from
// the one answering there: launch reports errPortTaken (on which Start picks
// another port) rather than success.
func TestPortTakenByAnotherProgram(t *testing.T) {
	Need(t)
	other := Start(t)
	s := Prepare(t, other.Port())
	err := s.launch()
	if !errors.Is(err, errPortTaken) {
		t.Fatalf("launch on a port another redis-server serves: %v", err)
	}
	if s.Running() {
		t.Fatal("the server that could not bind counts as running")
	}
	// The cluster bus port taken, by a program that listens with
	// SO_REUSEADDR beside the reservation (what FreePort cannot prevent):
	// the same.
	bus := FreePort(t, true)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(bus+10000))
	if err != nil {
		t.Fatalf("listening on the reserved bus port %d: %v", bus+10000, err)
	}
	defer l.Close()
	c := Prepare(t, bus, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	if err := c.launch(); !errors.Is(err, errPortTaken) || !strings.Contains(err.Error(), "(cluster)") {
		t.Fatalf("launch with its bus port taken: %v", err)
	}
}
