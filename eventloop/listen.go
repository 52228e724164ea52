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
// listenAddr probes the address with a plain bind first, which fails when
// anything listens there, and resolves port 0 to a concrete free port that
// every loop then binds.

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
// with port 0 replaced by a free port, after checking that nothing listens on
// it; other networks unchanged.
func resolveListenAddr(addr string) (string, error) {
	network, address := splitAddr(addr)
	if !reusePortNetwork(network) {
		return network + "://" + address, nil
	}
	port, err := probePort(network, address)
	if err != nil {
		return "", fmt.Errorf("eventloop: listen %s: %w", address, err)
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return "", err
	}
	return network + "://" + net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// probePort binds a socket without SO_REUSEPORT to address (SO_REUSEADDR
// only, so connections in TIME_WAIT do not stand in the way) and returns the
// port it got. The bind fails when any socket listens there, SO_REUSEPORT or
// not. The socket is closed before returning; the loops' listeners bind the
// port right after.
func probePort(network, address string) (int, error) {
	sa, family, _, ipv6only, err := socket.GetTCPSockAddr(network, address)
	if err != nil {
		return 0, err
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return 0, os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	if family == unix.AF_INET6 && ipv6only {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return 0, os.NewSyscallError("setsockopt", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return 0, os.NewSyscallError("setsockopt", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return 0, os.NewSyscallError("bind", err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return 0, os.NewSyscallError("getsockname", err)
	}
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		return a.Port, nil
	case *unix.SockaddrInet6:
		return a.Port, nil
	}
	return 0, fmt.Errorf("unexpected socket address %T", got)
}
