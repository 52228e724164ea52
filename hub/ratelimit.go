package hub

import (
	"strconv"
	"time"
)

// RateLimits caps what one connection may send; a zero rate turns its limit
// off. The state is a few bytes in the connection, refilled lazily when a
// command arrives: no timer, no goroutine.
type RateLimits struct {
	// CommandsPerSecond is the sustained rate of commands (of every op);
	// CommandBurst how many may come at once (0: max(1, the rate)).
	CommandsPerSecond float64
	CommandBurst      int
	// PublishesPerSecond and PublishBurst do the same for publishes alone
	// (which also count as commands).
	PublishesPerSecond float64
	PublishBurst       int
	// MaxRejections closes a connection with 1008 "rate limit" once it has
	// had that many commands refused within RejectionWindow (0: never close;
	// a window of 0 means 10 seconds).
	MaxRejections   int
	RejectionWindow time.Duration
}

// DefaultRejectionWindow is RateLimits.RejectionWindow's default.
const DefaultRejectionWindow = 10 * time.Second

func (r RateLimits) on() bool { return r.CommandsPerSecond > 0 || r.PublishesPerSecond > 0 }

// bucket is a token bucket refilled lazily from the hub's clock.
type bucket struct {
	tokens float32
	at     uint32 // clock reading of the last refill (ms; wraps after 49 days, see take)
}

// take refills b for the time since its last refill and takes one token.
// The clock wraps every 49.7 days; a connection silent for a whole wrap
// finds its bucket refilled for the remainder only, which is still fair.
func (b *bucket) take(now uint32, rate, burst float32) bool {
	b.tokens = min(burst, b.tokens+float32(now-b.at)*rate/1000)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}

// connLimits is a rate-limited connection's state (24 bytes), allocated at
// open only when limits are configured.
type connLimits struct {
	cmds, pubs bucket
	rejects    uint32 // commands refused since windowAt
	windowAt   uint32 // clock reading at which the rejection window began
}

// limiter holds the hub's rate limits in the form the hot path uses.
type limiter struct {
	on                      bool
	cmdRate, cmdBurst       float32
	pubRate, pubBurst       float32
	maxRejects              int
	windowMs                uint32
	epoch                   time.Time
	errCommands, errPublish *Error
}

func newLimiter(r RateLimits) limiter {
	burst := func(rate float64, b int) float32 {
		if b > 0 {
			return float32(b)
		}
		return float32(max(1, rate))
	}
	if r.RejectionWindow <= 0 {
		r.RejectionWindow = DefaultRejectionWindow
	}
	return limiter{
		on:      r.on(),
		cmdRate: float32(r.CommandsPerSecond), cmdBurst: burst(r.CommandsPerSecond, r.CommandBurst),
		pubRate: float32(r.PublishesPerSecond), pubBurst: burst(r.PublishesPerSecond, r.PublishBurst),
		maxRejects: r.MaxRejections,
		windowMs:   uint32(r.RejectionWindow / time.Millisecond),
		epoch:      time.Now(),
		errCommands: &Error{429, "rate limit: more than " + strconv.FormatFloat(r.CommandsPerSecond, 'g', -1, 64) +
			" commands per second on this connection"},
		errPublish: &Error{429, "rate limit: more than " + strconv.FormatFloat(r.PublishesPerSecond, 'g', -1, 64) +
			" publishes per second on this connection"},
	}
}

func (lm *limiter) now() uint32 { return uint32(time.Since(lm.epoch) / time.Millisecond) }

// newConnLimits starts a connection with full buckets.
func (lm *limiter) newConnLimits() *connLimits {
	now := lm.now()
	return &connLimits{cmds: bucket{lm.cmdBurst, now}, pubs: bucket{lm.pubBurst, now}, windowAt: now}
}

// admit takes a command's tokens; it returns the error to answer when the
// command is over a limit, and whether the connection has now been refused
// too often and must be closed.
func (lm *limiter) admit(cl *connLimits, publish bool) (refusal *Error, closeConn bool) {
	now := lm.now()
	switch {
	case lm.cmdRate > 0 && !cl.cmds.take(now, lm.cmdRate, lm.cmdBurst):
		refusal = lm.errCommands
	case publish && lm.pubRate > 0 && !cl.pubs.take(now, lm.pubRate, lm.pubBurst):
		refusal = lm.errPublish
	default:
		return nil, false
	}
	if now-cl.windowAt > lm.windowMs {
		cl.windowAt, cl.rejects = now, 0
	}
	if cl.rejects < 1<<32-1 {
		cl.rejects++
	}
	return refusal, lm.maxRejects > 0 && int(cl.rejects) >= lm.maxRejects
}
