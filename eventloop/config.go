package eventloop

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults applied to zero Config fields.
const (
	DefaultSendQueue        = 256
	DefaultMaxPending       = 1 << 20
	DefaultMaxMessage       = 64 << 10
	DefaultPingInterval     = 25 * time.Second
	DefaultPongTimeout      = 10 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultCloseTimeout     = 2 * time.Second
	// FDReserve is how many file descriptors the default MaxConns leaves for
	// everything else the process opens (Redis, the admin listener, files).
	FDReserve = 256
)

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
	MaxConns                int    // 0 = the fd limit minus FDReserve
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
		{"SendQueue", c.SendQueue}, {"MaxPending", c.MaxPending}, {"MaxMessage", c.MaxMessage}, {"MaxConns", c.MaxConns}} {
		if v.n < 0 {
			return c, fmt.Errorf("eventloop: %s must not be negative, got %d", v.name, v.n)
		}
	}
	for _, v := range []struct {
		name string
		d    time.Duration
	}{{"PongTimeout", c.PongTimeout}, {"HandshakeTimeout", c.HandshakeTimeout}, {"CloseTimeout", c.CloseTimeout}} {
		if v.d < 0 {
			return c, fmt.Errorf("eventloop: %s must not be negative, got %v", v.name, v.d)
		}
	}
	if c.Loops == 0 {
		c.Loops = runtime.NumCPU()
	}
	if c.SendQueue == 0 {
		c.SendQueue = DefaultSendQueue
	}
	if c.SendQueue > 1<<20 {
		return c, fmt.Errorf("eventloop: SendQueue %d is over the 1<<20 cap", c.SendQueue)
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = DefaultMaxMessage
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
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// tickInterval is the timer wheel's resolution: fine enough for the shortest
// timeout (an eighth of it), never busier than 200 wakes a second nor coarser
// than 100ms.
func (c *Config) tickInterval() time.Duration {
	shortest := min(c.PongTimeout, c.HandshakeTimeout, c.CloseTimeout)
	if c.PingInterval > 0 {
		shortest = min(shortest, c.PingInterval)
	}
	return min(max(shortest/8, 5*time.Millisecond), 100*time.Millisecond)
}
