//go:build race

package wsproto

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// allocation counts that rely on a pool are meaningless under it.
const raceEnabled = true
