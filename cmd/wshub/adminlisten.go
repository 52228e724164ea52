package main

import (
	"errors"
	"net"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// capListener holds at most max connections of the listener it wraps, so that
// the admin listener takes no more than its share of the process's file
// descriptors however many clients connect: a connection over the cap is
// accepted and closed at once (with a reset, so that no kernel state stays
// behind either) and counted. Closing an accepted connection frees its slot.
//
// Accept errors are returned exactly as the wrapped listener gave them:
// http.Server retries the temporary ones (EMFILE, ENFILE, ...) with backoff,
// which wrapping them into another error would turn into the end of Serve.
type capListener struct {
	net.Listener
	max     int64
	open    atomic.Int64  // accepted and not closed yet
	refused atomic.Uint64 // closed at accept over the cap
}

func newCapListener(ln net.Listener, max int) *capListener {
	return &capListener{Listener: ln, max: int64(max)}
}

// Accept returns the next connection under the cap; those over it are closed
// here and never reach the caller.
func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err // unchanged, see capListener
		}
		if l.open.Add(1) <= l.max {
			return &capConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.refused.Add(1)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST: the descriptor and the socket go now
		}
		_ = c.Close()
	}
}

// Open is the number of connections accepted and not closed yet.
func (l *capListener) Open() int64 { return l.open.Load() }

// Refused is the number of connections closed at accept over the cap.
func (l *capListener) Refused() uint64 { return l.refused.Load() }

// register exports the listener's counts on reg.
func (l *capListener) register(reg prometheus.Registerer) error {
	return errors.Join(
		reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wshub_admin_connections",
			Help: "Connections open on the admin listener.",
		}, func() float64 { return float64(l.Open()) })),
		reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "wshub_admin_refused_connections_total",
			Help: "Admin connections closed at accept because --admin-max-conns were open.",
		}, func() float64 { return float64(l.Refused()) })),
	)
}

// capConn gives its slot back on the first Close.
type capConn struct {
	net.Conn
	l      *capListener
	closed atomic.Bool
}

func (c *capConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.l.open.Add(-1)
	}
	return err
}

// CloseWrite keeps the half-close http.Server uses before closing a
// connection whose request body it did not read (e.g. after a 413), so the
// client reads the answer instead of a reset.
func (c *capConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
