package eventloop

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/panjf2000/gnet/v2/pkg/socket"
	"golang.org/x/sys/unix"
)

// Every loop listens on its own SO_REUSEPORT socket (gnet.WithReusePort) and
// accepts one connection per readiness event, handing it to OnOpen on the same
// goroutine. gnet's other mode, one acceptor goroutine for all loops, accepts
// the kernel's whole queue (up to somaxconn) before any loop can refuse the
// excess, so a connect burst at the ceiling takes thousands of descriptors at
// once and ends in EMFILE, which gnet treats as fatal. This way the excess
// waits in the kernel's queues, where it costs us no descriptor.
//
// SO_REUSEPORT has two traps, handled here: each listener bound to port 0
// would get a port of its own, and a second process of the same user could
// join the port silently instead of failing with "address already in use".
// An explicit port is probed with a plain bind first, which fails when
// anything listens there. Port 0 is resolved by binding a SO_REUSEPORT
// socket to it and keeping that socket (bound, never listening, so it takes
// no connections) until Run returns: the port the kernel picked stays ours
// while every loop binds it, with no moment where another process could
// take it.

// reusePortNetwork reports whether the listen address is TCP, the only
// network where gnet supports per-loop SO_REUSEPORT listeners.
func reusePortNetwork(network string) bool {
	return network == "tcp" || network == "tcp4" || network == "tcp6"
}

// splitAddr splits "tcp://host:port" (or "host:port") into network and address.
func splitAddr(addr string) (network, address string) {
	if i := strings.Index(addr, "://"); i >= 0 {
		return addr[:i], addr[i+3:]
	}
	return "tcp", addr
}

// resolveListenAddr returns the address gnet should listen on: for TCP, addr
// with port 0 replaced by the port of hold, a socket the caller closes once
// the listeners are gone (-1 when there is none); other networks unchanged.
func resolveListenAddr(addr string) (resolved string, hold int, err error) {
	network, address := splitAddr(addr)
	if !reusePortNetwork(network) {
		return network + "://" + address, -1, nil
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return "", -1, err
	}
	reuse := port == "0" || port == ""
	fd, got, err := bindPort(network, address, reuse)
	if err != nil {
		return "", -1, fmt.Errorf("eventloop: listen %s: %w", address, err)
	}
	if !reuse {
		unix.Close(fd) // the probe has said what it had to
		fd = -1
	}
	return network + "://" + net.JoinHostPort(host, strconv.Itoa(got)), fd, nil
}

// bindPort binds a socket to address and returns it with the port it got.
// Without reusePort (SO_REUSEADDR only, so connections in TIME_WAIT do not
// stand in the way) the bind fails when any socket listens there,
// SO_REUSEPORT or not; with it, the socket can share the port with the
// loops' listeners.
func bindPort(network, address string, reusePort bool) (fd, port int, err error) {
	sa, family, _, ipv6only, err := socket.GetTCPSockAddr(network, address)
	if err != nil {
		return -1, 0, err
	}
	fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, 0, os.NewSyscallError("socket", err)
	}
	fail := func(call string, err error) (int, int, error) {
		unix.Close(fd)
		return -1, 0, os.NewSyscallError(call, err)
	}
	if family == unix.AF_INET6 && ipv6only {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fail("setsockopt", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("setsockopt", err)
	}
	if reusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fail("setsockopt", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		return fd, a.Port, nil
	case *unix.SockaddrInet6:
		return fd, a.Port, nil
	}
	unix.Close(fd)
	return -1, 0, fmt.Errorf("unexpected socket address %T", got)
}
