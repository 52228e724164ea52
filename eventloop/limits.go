package eventloop

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// The descriptor budget. gnet v2.9.7 stops its whole engine when accept
// fails with EMFILE, dropping every client, so the process must never run out
// of descriptors whatever arrives: every holder of descriptors has a share,
// and connections get what the others leave. The shares:
//
//   - fixedFDs: stdin/out/err, Go's netpoller (epoll, eventfd), the
//     socket that holds port 0 for the loops (listen.go), and a margin.
//   - loopFDs per loop: its listener, epoll and eventfd, and the one
//     connection it may hold between accept and OnOpen's refusal. Each loop
//     accepts on its own SO_REUSEPORT listener, one connection per readiness
//     event, and OnOpen refuses on the same goroutine before the next accept
//     (see listen.go): so however many clients queue in the kernel (they hold
//     no descriptor of ours there), at most one per loop is past accept and
//     not yet counted in Conns.
//   - Config.ReservedFDs: the rest of the process (admin listener and its
//     connections, Redis connections, files), which the caller sizes.
const (
	fixedFDs = 16
	loopFDs  = 4
	// DefaultReservedFDs is Config.ReservedFDs when zero: room for a small
	// admin listener and a Redis client.
	DefaultReservedFDs = 64
	// maxConnsCeiling caps the default for limits like RLIM_INFINITY.
	maxConnsCeiling = 1 << 24
	// unknownFDLimit is assumed when RLIMIT_NOFILE cannot be read.
	unknownFDLimit = 1024
)

// raiseFDLimit lifts the soft RLIMIT_NOFILE to the hard limit and returns the
// soft limit now in force (0 when it cannot be read).
func raiseFDLimit() uint64 {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if unix.Setrlimit(unix.RLIMIT_NOFILE, &raised) == nil {
			lim = raised
		}
	}
	return lim.Cur
}

// connBudget is how many connections fit in fdLimit descriptors once the
// loops and the reserve have their shares (at most maxConnsCeiling; <= 0 when
// nothing is left).
func connBudget(fdLimit uint64, loops, reserved int) int {
	if fdLimit == 0 {
		fdLimit = unknownFDLimit
	}
	if fdLimit > maxConnsCeiling {
		fdLimit = maxConnsCeiling
	}
	return int(fdLimit) - fixedFDs - loops*loopFDs - reserved
}

// applyBudget sets a zero MaxConns to the budget and refuses a MaxConns over
// it: such a setting would let accept hit EMFILE under a connect burst.
func (c *Config) applyBudget(fdLimit uint64) error {
	budget := connBudget(fdLimit, c.Loops, c.ReservedFDs)
	if budget < 1 {
		return fmt.Errorf("eventloop: the open-file limit %d leaves no descriptor for connections "+
			"(%d for the process, %d per loop, %d reserved): raise it (ulimit -n)",
			fdLimit, fixedFDs, loopFDs, c.ReservedFDs)
	}
	switch {
	case c.MaxConns == 0:
		c.MaxConns = budget
	case c.MaxConns > budget:
		return fmt.Errorf("eventloop: MaxConns %d is over the descriptor budget of %d connections "+
			"(open-file limit %d, less %d for the process, %d per loop for %d loops, %d reserved): "+
			"raise the limit (ulimit -n) or lower MaxConns", c.MaxConns, budget, fdLimit,
			fixedFDs, loopFDs, c.Loops, c.ReservedFDs)
	}
	return nil
}
