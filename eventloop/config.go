package eventloop

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wshub/wshub/wsproto"
)

// Defaults applied to zero Config fields.
const (
	DefaultSendQueue        = 256
	MaxSendQueue            = 1 << 16 // SendQueue's ceiling: a full ring of that many frames is already 512 KiB
	DefaultReadBuffer       = 64 << 10
	DefaultWriteBuffer      = 64 << 10
	DefaultMaxPending       = 1 << 20
	DefaultMaxMessage       = 64 << 10
	DefaultPingInterval     = 25 * time.Second
	DefaultPongTimeout      = 10 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultCloseTimeout     = 2 * time.Second
	// DefaultMessageTimeout bounds how long a started message (an incomplete
	// frame or fragmented message) may take to complete: a 64 KiB message
	// at 10 KB/s still makes it.
	DefaultMessageTimeout = 10 * time.Second
	// DefaultMaxPartialBytes caps the bytes all connections together may
	// park in unfinished upgrades, frames and messages: 64 MiB, about three
	// times what 19,000 idle connections cost, whatever clients send.
	DefaultMaxPartialBytes = 64 << 20
	// DefaultMaxPongsPerRead is how many pings of one read event get a pong
	// each; MaxPongsPerReadCeiling bounds the setting (each loop keeps
	// room for that many pongs, 127 bytes each: 508 KiB at the ceiling).
	DefaultMaxPongsPerRead = 64
	MaxPongsPerReadCeiling = 4096
)

// MinPartialBytes is the smallest MaxPartialBytes for maxMessage: a single
// largest message arriving in pieces must fit, header included.
func MinPartialBytes(maxMessage int) int { return maxMessage + maxFrameHeader }

// maxServerHeader is the longest header of a server frame (unmasked, 64-bit
// length).
const maxServerHeader = 10

// Config configures a Server. Zero fields take the defaults above.
type Config struct {
	Addr                    string // ":8080" or "127.0.0.1:0"
	Loops                   int    // event loops; 0 = runtime.NumCPU()
	ReadBuffer, WriteBuffer int    // gnet WithReadBufferCap (per loop) / WithWriteBufferCap (per connection)
	SendQueue               int    // frames a connection may have queued (default 256)
	MaxPending              int    // bytes in gnet's outbound buffer before a slow-consumer drop (default 1 MiB; at least MaxMessage+10)
	MaxMessage              int    // largest client message after reassembly (default 64 KiB)
	// MaxConns caps connections, upgraded or not; 0 = what the descriptor
	// budget leaves (see limits.go). More than the budget is an error.
	MaxConns int
	// ReservedFDs is the descriptors the rest of the process may hold:
	// admin listener and connections, Redis, files (default
	// DefaultReservedFDs).
	ReservedFDs int
	// MaxPartialBytes caps the bytes held by all connections together in
	// unfinished upgrades, frames and fragmented messages; the connection
	// whose input would pass it is closed with 1008 (default
	// DefaultMaxPartialBytes; at least MaxMessage+14).
	MaxPartialBytes int
	// MaxFragments caps the frames of one message (more: close 1009; default
	// wsproto.DefaultMaxFragments);
	// MessageTimeout how long a started message may take to complete
	// (longer: close 1008).
	MaxFragments   int
	MessageTimeout time.Duration
	// MaxPongsPerRead caps the pongs one read event of a connection gets:
	// up to that many pings each get their pong, in order; past it the
	// last pong answers the latest ping instead (RFC 6455 §5.5.3), so a
	// ping flood costs a bounded buffer and one write per read (default
	// DefaultMaxPongsPerRead; at most MaxPongsPerReadCeiling).
	MaxPongsPerRead int
	// MemoryLimit is the process's soft memory limit in bytes (the caller
	// sets it with debug.SetMemoryLimit); upgrades are refused with 503
	// while the Go runtime's memory is near it. 0 = no admission control.
	MemoryLimit int64
	// MaxConnsPerIP caps the upgraded connections of one source (an IPv4
	// address or an IPv6 /64); HandshakesPerIPPerS caps its upgrades a
	// second, with a burst of max(1, ceil(rate)). An upgrade over either is
	// answered 429 with Retry-After and closed (iplimit.go). 0 = no limit.
	MaxConnsPerIP       int
	HandshakesPerIPPerS float64
	// PingInterval is how often a connection is pinged (negative: never);
	// PongTimeout how long it may take to answer; HandshakeTimeout how long a
	// new TCP connection may take to complete its upgrade.
	PingInterval, PongTimeout, HandshakeTimeout time.Duration
	// CloseTimeout bounds how long a connection we closed may take to answer
	// our close frame before its socket is closed anyway (default 2s).
	CloseTimeout time.Duration
	Origins      []string              // allow-list of Origin values; empty = any
	Echo         bool                  // serve /echo
	Logger       *slog.Logger          // nil = slog.Default()
	Metrics      prometheus.Registerer // nil = none

	// Compression accepts clients' permessage-deflate offers (RFC 7692, no
	// context takeover either way). CompressionMinSize is the payload under
	// which messages go out plain even to those clients (default
	// DefaultCompressionMinSize; 1 compresses every message deflate shrinks).
	Compression        bool
	CompressionMinSize int
}

// withDefaults validates c and fills in the defaults.
func (c Config) withDefaults() (Config, error) {
	if c.Addr == "" {
		return c, errors.New("eventloop: Addr is required")
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"Loops", c.Loops}, {"ReadBuffer", c.ReadBuffer}, {"WriteBuffer", c.WriteBuffer},
		{"SendQueue", c.SendQueue}, {"MaxPending", c.MaxPending}, {"MaxMessage", c.MaxMessage}, {"MaxConns", c.MaxConns},
		{"ReservedFDs", c.ReservedFDs}, {"MaxPartialBytes", c.MaxPartialBytes}, {"MaxFragments", c.MaxFragments},
		{"MaxPongsPerRead", c.MaxPongsPerRead}, {"MemoryLimit", int(c.MemoryLimit)}, {"MaxConnsPerIP", c.MaxConnsPerIP}, {"CompressionMinSize", c.CompressionMinSize}} {
		if v.n < 0 {
			return c, fmt.Errorf("eventloop: %s must not be negative, got %d", v.name, v.n)
		}
	}
	for _, v := range []struct {
		name string
		d    time.Duration
	}{{"PongTimeout", c.PongTimeout}, {"HandshakeTimeout", c.HandshakeTimeout}, {"CloseTimeout", c.CloseTimeout},
		{"MessageTimeout", c.MessageTimeout}} {
		if v.d < 0 {
			return c, fmt.Errorf("eventloop: %s must not be negative, got %v", v.name, v.d)
		}
	}
	if r := c.HandshakesPerIPPerS; !(r >= 0 && r <= MaxHandshakesPerIPPerS) { // NaN too
		return c, fmt.Errorf("eventloop: HandshakesPerIPPerS must be between 0 and %g, got %g", MaxHandshakesPerIPPerS, r)
	}
	if c.Loops == 0 {
		c.Loops = runtime.NumCPU()
	}
	if c.SendQueue == 0 {
		c.SendQueue = DefaultSendQueue
	}
	if c.ReadBuffer == 0 {
		c.ReadBuffer = DefaultReadBuffer
	}
	if c.WriteBuffer == 0 {
		c.WriteBuffer = DefaultWriteBuffer
	}
	if c.SendQueue > MaxSendQueue {
		return c, fmt.Errorf("eventloop: SendQueue %d is over the %d cap", c.SendQueue, MaxSendQueue)
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = DefaultMaxMessage
	}
	if c.MaxMessage > wsproto.MaxMessageCeiling {
		return c, fmt.Errorf("eventloop: MaxMessage %d is over the %d cap", c.MaxMessage, wsproto.MaxMessageCeiling)
	}
	// One frame is always written whole into gnet's buffer: a limit below
	// the largest frame would drop a healthy client for a single message.
	c.MaxPending = max(c.MaxPending, c.MaxMessage+maxServerHeader)
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.PongTimeout == 0 {
		c.PongTimeout = DefaultPongTimeout
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.ReservedFDs == 0 {
		c.ReservedFDs = DefaultReservedFDs
	}
	if c.MaxFragments == 0 {
		c.MaxFragments = wsproto.DefaultMaxFragments
	}
	if c.MaxFragments > wsproto.MaxFragmentsCeiling {
		return c, fmt.Errorf("eventloop: MaxFragments %d is over the %d cap", c.MaxFragments, wsproto.MaxFragmentsCeiling)
	}
	if c.MaxPongsPerRead == 0 {
		c.MaxPongsPerRead = DefaultMaxPongsPerRead
	}
	if c.MaxPongsPerRead > MaxPongsPerReadCeiling {
		return c, fmt.Errorf("eventloop: MaxPongsPerRead %d is over the %d cap", c.MaxPongsPerRead, MaxPongsPerReadCeiling)
	}
	if c.MessageTimeout == 0 {
		c.MessageTimeout = DefaultMessageTimeout
	}
	if c.CompressionMinSize == 0 {
		c.CompressionMinSize = DefaultCompressionMinSize
	}
	if c.MaxPartialBytes == 0 {
		c.MaxPartialBytes = max(DefaultMaxPartialBytes, MinPartialBytes(c.MaxMessage))
	}
	if c.MaxPartialBytes < MinPartialBytes(c.MaxMessage) {
		return c, fmt.Errorf("eventloop: MaxPartialBytes %d is under %d, what one largest message needs",
			c.MaxPartialBytes, MinPartialBytes(c.MaxMessage))
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// tickInterval is the timer wheel's resolution: fine enough for the shortest
// timeout (an eighth of it), never busier than 200 wakes a second nor coarser
// than 100ms.
func (c *Config) tickInterval() time.Duration {
	shortest := min(c.PongTimeout, c.HandshakeTimeout, c.CloseTimeout, c.MessageTimeout)
	if c.PingInterval > 0 {
		shortest = min(shortest, c.PingInterval)
	}
	return min(max(shortest/8, 5*time.Millisecond), 100*time.Millisecond)
}
