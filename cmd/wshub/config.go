package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/wshub/wshub/redis"
)

// config is everything the command line, the environment and the
// configuration file can set (settings.go lists each setting once).
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
	MaxSubs         int
	MaxConns        int
	MaxPartial      int
	MaxFragments    int
	MaxPongsPerRead int
	MessageTimeout  time.Duration
	MemoryLimit     byteSize
	HistoryMaxBytes byteSize
	PingInterval    time.Duration
	PongTimeout     time.Duration
	HandshakeTime   time.Duration
	ShutdownTimeout time.Duration
	Origins         []string
	Echo            bool
	Pprof           bool
	LogLevel        string
	LogFormat       string

	// permessage-deflate: accepted when clients offer it; messages under
	// CompressionMinSize bytes go out plain all the same.
	Compression        bool
	CompressionMinSize int

	Redis             string
	RedisCluster      []string
	InstanceID        string
	Registry          bool
	HeartbeatInterval time.Duration
	RegistryTTL       time.Duration
	ProbeInterval     time.Duration
	ProbeTimeout      time.Duration

	// The admin listener's limits (admin.go).
	AdminMaxConns      int
	AdminHeaderTimeout time.Duration
	AdminReadTimeout   time.Duration
	AdminWriteTimeout  time.Duration
	AdminIdleTimeout   time.Duration
	// Admin API keys: any one of them lets a client in. A non-loopback
	// admin listener needs one unless AdminInsecure.
	AdminAPIKeys        []string
	AdminProtectMetrics bool // /metrics wants a key too
	AdminInsecure       bool

	// Client authentication (JWT). Any of JWTSecrets, JWTPublicKeys (PEM
	// file paths) and JWTJWKS (URL or file) configures it: authEnabled.
	JWTSecrets      []string
	JWTPublicKeys   []string
	JWTJWKS         string
	JWTIssuer       string // required iss; "" any
	JWTAudience     string // required aud; "" any
	JWTLeeway       time.Duration
	AllowAnonymous  bool // with auth, connections without a token are let in too
	RequireExp      bool // tokens without exp are refused
	MaxConnsPerUser int  // 0: no limit

	// Per-connection and per-IP rate limits; 0 turns each off. A burst left
	// 0 under a rate is one second's worth (derive).
	CommandsPerSec        float64
	CommandsBurst         int
	PublishesPerSec       float64
	PublishesBurst        int
	MaxRejections         int // rate-limit rejections within RejectionWindow that close with 1008
	RejectionWindow       time.Duration
	MaxConnsPerIP         int
	HandshakesPerIPPerSec float64

	// Channel namespaces (namespaces.go): the part of a channel name before
	// its first ':'. DefaultNamespace (channels without ':') is nil when the
	// file does not give it: see defaultNamespace for what applies then.
	DefaultNamespace       *namespaceOptions
	AllowUnknownNamespaces bool
	Namespaces             map[string]namespaceOptions

	ConfigFile string // --config: the YAML file the settings above came from, if any

	registrySet bool // --registry was given (flag, environment or file)
	// src names each setting for errors by where its value came from:
	// "--loops", "WSHUB_LOOPS" or "wshub.yaml:7: loops".
	src map[string]string
}

// publishEnvelope is what the default --max-publish leaves of --max-message
// for the rest of a publish command.
const publishEnvelope = 1 << 10

// envPrefix makes every flag settable as WSHUB_<NAME> (dashes become underscores).
const envPrefix = "WSHUB_"

func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// newFlagSet is the command line of a fresh config, every setting at its
// default.
func newFlagSet(c *config, out io.Writer) *flag.FlagSet { return flagSet(c, c.settings(), out) }

// flagSet registers the flags of the settings in tab, and --config.
func flagSet(c *config, tab []setting, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("wshub", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.ConfigFile, "config", c.ConfigFile, "YAML configuration `FILE`; flags and WSHUB_ variables override what it says")
	keys := map[string]string{}
	for _, s := range tab {
		if s.flag != "" {
			fs.Var(s.v.(value), s.flag, s.usage)
			keys[s.flag] = s.key
		}
	}
	fs.Usage = func() {
		fmt.Fprintf(out, "wshub: a horizontally-scalable WebSocket pub/sub gateway.\n\n"+
			"Usage: wshub [flags]\n       wshub config check FILE\n       wshub config print [flags]\n       wshub token --sub USER [--channels LIST] [--ttl 1h] [flags]   (a development token from --jwt-secret)\n\n"+
			"Every flag can also be set as %s<NAME> (e.g. %sPING_INTERVAL=30s) and in the --config file under\n"+
			"its key; a flag on the command line wins over the environment, which wins over the file.\n\n", envPrefix, envPrefix)
		printFlags(out, fs, keys)
	}
	return fs
}

// printFlags is flag.PrintDefaults with each flag's type and its key in the
// configuration file.
func printFlags(out io.Writer, fs *flag.FlagSet, keys map[string]string) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		if v, ok := f.Value.(value); ok && typ == "value" {
			typ = v.typeName()
		}
		fmt.Fprintf(out, "  -%s", f.Name)
		if typ != "" {
			fmt.Fprintf(out, " %s", typ)
		}
		fmt.Fprintf(out, "\n    \t%s", usage)
		var notes []string
		if d := f.DefValue; d != "" && d != "0" && d != "false" {
			if typ == "string" {
				d = strconv.Quote(d)
			}
			notes = append(notes, "default "+d)
		}
		if k := keys[f.Name]; k != "" {
			notes = append(notes, "config "+k)
		}
		if len(notes) > 0 {
			fmt.Fprintf(out, " (%s)", strings.Join(notes, "; "))
		}
		fmt.Fprintln(out)
	})
}

// parseConfig reads the configuration (loadConfig), works out the defaults
// that depend on other settings, and validates the whole.
func parseConfig(args []string, lookupEnv func(string) (string, bool), out io.Writer) (*config, error) {
	c, _, err := loadConfig(args, lookupEnv, out)
	if err != nil {
		return nil, err
	}
	c.derive()
	return c, c.validate()
}

// loadConfig reads the settings from, in increasing precedence, their
// defaults, the --config file, WSHUB_ variables and the command line. A
// variable set to "" counts: it is how WSHUB_ADMIN_ADDR= disables the admin
// listener. It returns the settings table bound to c, for config print.
func loadConfig(args []string, lookupEnv func(string) (string, bool), out io.Writer) (*config, []setting, error) {
	// The command line first on its own, for -h, its errors and --config;
	// it is parsed again once the file and the environment are in.
	probe := &config{}
	fs := newFlagSet(probe, out)
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected argument %q (all settings are flags)", fs.Arg(0))
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })

	c := &config{ConfigFile: probe.ConfigFile, src: map[string]string{}}
	if v, set := lookupEnv(envName("config")); set && !onCommandLine["config"] {
		c.ConfigFile = v
	}
	tab := c.settings()
	for _, s := range tab {
		c.src[s.key] = s.key
		if s.flag != "" {
			c.src[s.key] = "--" + s.flag
		}
	}
	if c.ConfigFile != "" {
		if err := c.loadFile(c.ConfigFile, tab); err != nil {
			return nil, nil, err
		}
	}
	var errs []error
	for _, s := range tab {
		if s.flag == "" || onCommandLine[s.flag] {
			continue
		}
		name := envName(s.flag)
		if v, set := lookupEnv(name); set {
			if err := s.v.(value).Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", name, v, err))
			}
			c.src[s.key] = name
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	fs = flagSet(c, tab, io.Discard)
	if err := fs.Parse(args); err != nil {
		return nil, nil, err // it parsed once already: not reached
	}
	for _, s := range tab {
		if onCommandLine[s.flag] {
			c.src[s.key] = "--" + s.flag
		}
	}
	return c, tab, nil
}

// derive works out the defaults that depend on other settings. `config
// print` prints the configuration before it, so that a printed file keeps
// them derived.
func (c *config) derive() {
	if !c.registrySet {
		c.Registry = c.redisEnabled()
	}
	if c.InstanceID == "" {
		c.InstanceID = redis.DefaultInstanceID()
	}
	if c.MaxPublish == 0 {
		// The command around data (op, channel, id) takes at most ~300 bytes.
		c.MaxPublish = max(c.MaxMessage-publishEnvelope, 1)
	}
	c.CommandsBurst = burst(c.CommandsBurst, c.CommandsPerSec)
	c.PublishesBurst = burst(c.PublishesBurst, c.PublishesPerSec)
}

// burst is a rate limit's burst: as given, or one second's worth.
func burst(given int, perSec float64) int {
	if given > 0 || perSec <= 0 {
		return given
	}
	return max(1, int(math.Ceil(perSec)))
}

// name is how an error names the setting at key: by where its value came
// from (flag, variable, or file and line).
func (c *config) name(key string) string {
	if n := c.src[key]; n != "" {
		return n
	}
	return key
}

// redisEnabled reports whether a Redis broker is configured.
func (c *config) redisEnabled() bool { return c.Redis != "" || len(c.RedisCluster) > 0 }

// clusterAddrs is --redis-cluster's seed nodes.
func (c *config) clusterAddrs() []string { return c.RedisCluster }

// origins is the Origin allow-list.
func (c *config) origins() []string { return c.Origins }

// exitCode reports a configuration error on w: 2, or 0 for -h.
func exitCode(err error, w io.Writer) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(w, "wshub:", err)
	return 2
}
