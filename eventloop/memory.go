package eventloop

import (
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync/atomic"
	"time"
)

// Admission control near the memory limit: while the Go runtime's memory is
// above admitHigh of Config.MemoryLimit, upgrades are answered 503, until it
// falls under admitLow (the gap keeps it from flapping at every sample).
// Existing connections are untouched: refusing newcomers is how the process
// stays under the limit instead of growing until the kernel kills it.
const (
	admitHigh      = 0.90
	admitLow       = 0.80
	memorySampling = 100 * time.Millisecond
)

// memoryGuard samples the runtime's memory from gnet's ticker goroutine (the
// only writer of its fields but overloaded, which the loops read).
type memoryGuard struct {
	overloaded atomic.Bool
	high, low  uint64 // thresholds in bytes; 0 = no limit
	last       time.Time
	samples    [2]rtmetrics.Sample

	peak        int64     // most connections since the last release
	dropSince   time.Time // when connections first fell far enough; zero otherwise
	lastRelease time.Time // of freeAfterDrop or freeAfterBurst
	release     func()    // debug.FreeOSMemory; a counter in tests

	releasedAt uint64    // connections opened (nextID) at the last release
	opened     uint64    // connections opened at the previous tick
	stillSince time.Time // since when no connection has been opened; zero while they are
}

// Giving memory back after a flood. Once a flood of connections (a
// slowloris, a reconnect storm) is gone, an idle gateway allocates too little
// for the GC to run before its two-minute forced cycle, and the runtime's
// background scavenger keeps what the heap goal allows: measured, RSS went
// from 12 MB to 26 MB under 15,000 slowloris connections and was still 27 MB
// three minutes after they had timed out. So once connections have fallen to
// a quarter of their peak, by at least dropMin, and stayed there for
// dropSettle (a flood's connections time out over a second or two), the
// freed memory is returned at once (debug.FreeOSMemory: a GC, then every
// free page back to the OS), at most every releaseEvery. It runs on gnet's
// ticker goroutine, never on a loop.
const (
	dropMin      = 4096
	dropSettle   = time.Second
	releaseEvery = 30 * time.Second
)

// freeAfterDrop releases memory after a large drop in connections.
func (g *memoryGuard) freeAfterDrop(now time.Time, conns int64) {
	g.peak = max(g.peak, conns)
	if g.peak-conns < dropMin || conns > g.peak/4 || now.Sub(g.lastRelease) < releaseEvery {
		g.dropSince = time.Time{}
		return
	}
	if g.dropSince.IsZero() {
		g.dropSince = now
	}
	if now.Sub(g.dropSince) < dropSettle {
		return
	}
	g.peak, g.dropSince, g.lastRelease = conns, time.Time{}, now
	g.releasedAt = g.opened
	g.release()
}

// The same after a burst of new connections: verifying thousands of tokens,
// parsing thousands of upgrades leaves garbage the size of many connections
// (measured: 19,000 HS256 upgrades left 7.4 MB of freed heap the scavenger
// kept, 390 B per connection on top of the connections' own 950). Once at
// least dropMin connections opened since the last release and none for
// dropSettle, the memory is returned.
func (g *memoryGuard) freeAfterBurst(now time.Time, opened uint64) {
	if opened != g.opened {
		g.opened, g.stillSince = opened, time.Time{}
		return
	}
	if opened-g.releasedAt < dropMin || now.Sub(g.lastRelease) < releaseEvery {
		return
	}
	if g.stillSince.IsZero() {
		g.stillSince = now
	}
	if now.Sub(g.stillSince) < dropSettle {
		return
	}
	g.stillSince, g.lastRelease = time.Time{}, now
	g.releasedAt = opened
	g.release()
}

func (g *memoryGuard) init(limit int64) {
	g.release = debug.FreeOSMemory
	if limit <= 0 {
		return
	}
	g.high = uint64(float64(limit) * admitHigh)
	g.low = uint64(float64(limit) * admitLow)
	// What debug.SetMemoryLimit counts: all memory mapped by the runtime
	// less what it returned to the OS.
	g.samples[0].Name = "/memory/classes/total:bytes"
	g.samples[1].Name = "/memory/classes/heap/released:bytes"
}

// inUse reads the memory the limit applies to.
func (g *memoryGuard) inUse() uint64 {
	rtmetrics.Read(g.samples[:])
	return g.samples[0].Value.Uint64() - g.samples[1].Value.Uint64()
}

// sample updates overloaded at most every memorySampling.
func (g *memoryGuard) sample(now time.Time) {
	if g.high == 0 || now.Sub(g.last) < memorySampling {
		return
	}
	g.last = now
	switch used := g.inUse(); {
	case used >= g.high:
		g.overloaded.Store(true)
	case used < g.low:
		g.overloaded.Store(false)
	}
}
