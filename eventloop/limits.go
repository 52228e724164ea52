package eventloop

import "golang.org/x/sys/unix"

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

// defaultMaxConns keeps connections FDReserve descriptors below the fd
// limit, so that accept never fails with EMFILE (which stops gnet's engine
// and drops every client). A tiny limit gets half of it instead.
func defaultMaxConns(fdLimit uint64) int {
	const ceiling = 1 << 24 // RLIM_INFINITY and friends
	switch {
	case fdLimit == 0:
		return 1024 - FDReserve
	case fdLimit > ceiling:
		return ceiling
	case fdLimit <= 2*FDReserve:
		return int(fdLimit / 2)
	}
	return int(fdLimit) - FDReserve
}
