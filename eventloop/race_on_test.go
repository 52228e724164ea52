//go:build race

package eventloop

// raceEnabled: single-goroutine tests that only need volume shrink under
// the race detector, which slows them some forty times and finds nothing
// in them.
const raceEnabled = true
