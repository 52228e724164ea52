package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// config is everything the command line and the environment can set.
type config struct {
	Addr            string
	AdminAddr       string
	Loops           int
	ReadBuffer      int
	WriteBuffer     int
	SendQueue       int
	MaxPending      int
	MaxMessage      int
	MaxPublish      int
	MaxConns        int
	PingInterval    time.Duration
	PongTimeout     time.Duration
	HandshakeTime   time.Duration
	ShutdownTimeout time.Duration
	Origins         string
	Echo            bool
	LogLevel        string
	LogFormat       string
}

// envPrefix makes every flag settable as WSHUB_<NAME> (dashes become underscores).
const envPrefix = "WSHUB_"

func newFlagSet(c *config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("wshub", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.Addr, "addr", ":8080", "WebSocket listen address (clients connect to ws://ADDR/ws)")
	fs.StringVar(&c.AdminAddr, "admin-addr", "127.0.0.1:9090", "admin HTTP listen address: /api/publish, /healthz, /readyz, /metrics (empty disables)")
	fs.IntVar(&c.Loops, "loops", runtime.NumCPU(), "event loops (epoll goroutines); one per core is right for most loads")
	fs.IntVar(&c.ReadBuffer, "read-buffer", 64<<10, "bytes of the read buffer each loop shares between its connections")
	fs.IntVar(&c.WriteBuffer, "write-buffer", 64<<10, "static size of each connection's outbound buffer in gnet before it spills to a list")
	fs.IntVar(&c.SendQueue, "send-queue", 256, "frames a connection may have queued; overflowing it drops the client as a slow consumer (close 1008)")
	fs.IntVar(&c.MaxPending, "max-pending", 1<<20, "bytes a connection may have waiting in its socket's outbound buffer before it is dropped as a slow consumer")
	fs.IntVar(&c.MaxMessage, "max-message", 64<<10, "largest client message in bytes after reassembly; larger ones close the connection with 1009")
	fs.IntVar(&c.MaxPublish, "max-publish", 64<<10, "largest publish data in bytes; larger ones get error 413")
	fs.IntVar(&c.MaxConns, "max-conns", 0, "connections held at most; more are refused at once (0: the open-file limit minus a reserve)")
	fs.DurationVar(&c.PingInterval, "ping-interval", 25*time.Second, "how often an idle connection is pinged")
	fs.DurationVar(&c.PongTimeout, "pong-timeout", 10*time.Second, "how long a pinged connection may take to answer before it is closed")
	fs.DurationVar(&c.HandshakeTime, "handshake-timeout", 10*time.Second, "how long a new TCP connection may take to complete its upgrade before it is closed")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a graceful shutdown waits for clients to answer close 1001")
	fs.StringVar(&c.Origins, "origins", "", "comma-separated Origin allow-list; upgrades from other origins get 403 (empty: any origin)")
	fs.BoolVar(&c.Echo, "echo", false, "serve /echo, an RFC 6455 echo endpoint for conformance suites")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.Usage = func() {
		fmt.Fprintf(out, "wshub: a horizontally-scalable WebSocket pub/sub gateway.\n\nUsage: wshub [flags]\n\nEvery flag can also be set as %s<NAME> (e.g. %sPING_INTERVAL=30s); a flag on the command line wins.\n\n", envPrefix, envPrefix)
		fs.PrintDefaults()
	}
	return fs
}

// parseConfig reads flags, then fills every flag not given on the command
// line from its WSHUB_ variable, then validates the whole.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (*config, error) {
	c := &config{}
	fs := newFlagSet(c, out)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (all settings are flags)", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", name, v, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, c.validate()
}

func (c *config) validate() error {
	var errs []error
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	check(c.Addr != "", "--addr must not be empty")
	check(c.Loops >= 1 && c.Loops <= 256, "--loops must be between 1 and 256, got %d", c.Loops)
	check(c.ReadBuffer >= 4<<10, "--read-buffer must be at least 4096 bytes, got %d", c.ReadBuffer)
	check(c.WriteBuffer >= 1<<10, "--write-buffer must be at least 1024 bytes, got %d", c.WriteBuffer)
	check(c.SendQueue >= 1 && c.SendQueue <= 1<<16, "--send-queue must be between 1 and 65536 frames, got %d", c.SendQueue)
	check(c.MaxPending >= 4<<10, "--max-pending must be at least 4096 bytes, got %d", c.MaxPending)
	check(c.MaxMessage >= 125 && c.MaxMessage <= 64<<20, "--max-message must be between 125 bytes and 64 MiB, got %d", c.MaxMessage)
	check(c.MaxPublish >= 1, "--max-publish must be positive, got %d", c.MaxPublish)
	check(c.MaxConns >= 0, "--max-conns must not be negative, got %d", c.MaxConns)
	check(c.PingInterval > 0, "--ping-interval must be positive")
	check(c.PongTimeout > 0, "--pong-timeout must be positive")
	check(c.HandshakeTime > 0, "--handshake-timeout must be positive")
	check(c.ShutdownTimeout > 0, "--shutdown-timeout must be positive")
	check(c.LogFormat == "text" || c.LogFormat == "json", "--log-format must be text or json, got %q", c.LogFormat)
	_, lerr := parseLevel(c.LogLevel)
	check(lerr == nil, "--log-level: %v", lerr)
	return errors.Join(errs...)
}

// origins splits the allow-list.
func (c *config) origins() []string {
	var out []string
	for _, o := range strings.Split(c.Origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

func exitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(os.Stderr, "wshub:", err)
	return 2
}
