package main

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// acceptAll runs Accept in a goroutine and hands on what it returns.
func acceptAll(t *testing.T, l net.Listener) (<-chan net.Conn, <-chan error) {
	t.Helper()
	conns, errs := make(chan net.Conn, 16), make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				errs <- err
				return
			}
			conns <- c
		}
	}()
	return conns, errs
}

func nextConn(t *testing.T, conns <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("Accept returned no connection within 5s")
		return nil
	}
}

func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refusedAtDial dials addr and reports whether the other side closed the
// connection (EOF or reset), at connect already or on the first read.
func refusedAtDial(t *testing.T, addr string) (bool, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return errors.Is(err, syscall.ECONNRESET), err
	}
	defer c.Close()
	return closedByPeer(c, 5*time.Second)
}

// closedByPeer waits for c's read to end and reports whether the other side
// closed it (EOF or reset) rather than the deadline passing.
func closedByPeer(c net.Conn, within time.Duration) (bool, error) {
	c.SetReadDeadline(time.Now().Add(within))
	_, err := c.Read(make([]byte, 1))
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET), err
}

// The cap: connections up to it are handed on and counted, the next one is
// closed at accept and counted as refused, a Close frees a slot (once).
func TestAdminCapListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newCapListener(ln, 2)
	defer l.Close()
	conns, _ := acceptAll(t, l)
	addr := ln.Addr().String()

	c1 := dialTCP(t, addr)
	s1 := nextConn(t, conns)
	dialTCP(t, addr)
	nextConn(t, conns)
	if l.Open() != 2 || l.Refused() != 0 {
		t.Fatalf("two under a cap of 2: open %d refused %d", l.Open(), l.Refused())
	}
	if ok, err := refusedAtDial(t, addr); !ok {
		t.Fatalf("connection over the cap: read %v, want EOF or reset", err)
	}
	if l.Open() != 2 || l.Refused() != 1 {
		t.Fatalf("after one over the cap: open %d refused %d, want 2 and 1", l.Open(), l.Refused())
	}
	select {
	case c := <-conns:
		t.Fatalf("the connection over the cap was handed on: %v", c.RemoteAddr())
	default:
	}
	// The accepted ones still work.
	if _, err := c1.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	s1.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(s1, make([]byte, 1)); err != nil {
		t.Fatalf("accepted connection: %v", err)
	}

	s1.Close()
	s1.Close() // a second Close gives back nothing more
	if l.Open() != 1 {
		t.Fatalf("after Close: open %d, want 1", l.Open())
	}
	if ok, err := closedByPeer(c1, 5*time.Second); !ok {
		t.Fatalf("client of a closed connection: %v", err)
	}
	dialTCP(t, addr)
	nextConn(t, conns)
	if l.Open() != 2 || l.Refused() != 1 {
		t.Fatalf("a freed slot is reused: open %d refused %d, want 2 and 1", l.Open(), l.Refused())
	}
}

// CloseWrite reaches the socket: http.Server half-closes before closing a
// connection whose request body it did not read.
func TestAdminCapListenerCloseWrite(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newCapListener(ln, 1)
	defer l.Close()
	conns, _ := acceptAll(t, l)
	c := dialTCP(t, ln.Addr().String())
	s := nextConn(t, conns)
	cw, ok := s.(interface{ CloseWrite() error })
	if !ok {
		t.Fatal("accepted connection has no CloseWrite")
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if ok, err := closedByPeer(c, 5*time.Second); !ok {
		t.Fatalf("client after CloseWrite: %v, want EOF", err)
	}
	// Still readable on the server side.
	c.Write([]byte("y"))
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
		t.Fatalf("read after CloseWrite: %v", err)
	}
}

// faultyListener fails its first n Accepts with err, then accepts for real.
type faultyListener struct {
	net.Listener
	n   atomic.Int32
	err error
}

func (f *faultyListener) Accept() (net.Conn, error) {
	if f.n.Add(-1) >= 0 {
		return nil, f.err
	}
	return f.Listener.Accept()
}

func emfile() error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}

// Accept errors come back unchanged, so that http.Server still sees EMFILE
// as temporary, retries, and goes on serving.
func TestAdminCapListenerPassesAcceptErrors(t *testing.T) {
	want := emfile()
	l := newCapListener(&faultyListener{err: want}, 1)
	l.Listener.(*faultyListener).n.Store(1)
	if _, err := l.Accept(); err != want {
		t.Fatalf("Accept error %v (%T), want the listener's own", err, err)
	}
	//lint:ignore SA1019 http.Server.Serve still decides to retry on Temporary
	if ne, ok := want.(net.Error); !ok || !ne.Temporary() {
		t.Fatal("EMFILE from accept should be a temporary net.Error")
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &faultyListener{Listener: ln, err: emfile()}
	f.n.Store(3)
	logged := &syncBuffer{}
	srv := &http.Server{
		Handler:  http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ErrorLog: log.New(logged, "", 0),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(newCapListener(f, 4)) }()
	defer srv.Close()
	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatalf("server after three EMFILEs: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Fatalf("answer %q", b)
	}
	if s := logged.String(); strings.Count(s, "too many open files; retrying") != 3 {
		t.Fatalf("http.Server log:\n%s\nwant three retries", s)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve ended: %v", err)
	default:
	}
}

func TestAdminCapListenerMetrics(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newCapListener(ln, 1)
	defer l.Close()
	reg := prometheus.NewPedanticRegistry()
	if err := l.register(reg); err != nil {
		t.Fatal(err)
	}
	conns, _ := acceptAll(t, l)
	dialTCP(t, ln.Addr().String())
	nextConn(t, conns)
	if ok, err := refusedAtDial(t, ln.Addr().String()); !ok {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] = fmt.Sprintf("%s %v %v", mf.GetType(), m.GetGauge().GetValue(), m.GetCounter().GetValue())
		}
	}
	if got["wshub_admin_connections"] != "GAUGE 1 0" || got["wshub_admin_refused_connections_total"] != "COUNTER 0 1" {
		t.Fatalf("metrics %v, want one open (gauge) and one refused (counter)", got)
	}
}
