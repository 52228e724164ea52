package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/wshub/wshub/loadtest"
)

// options is the whole command line.
type options struct {
	cfg        loadtest.Config
	procs      int
	jsonFile   string
	serverPIDs []int
	maxLoss    float64 // fraction of expected; < 0 = no check
	maxErrors  int64   // < 0 = no check
	quiet      bool
	cpuProf    string

	// set in worker processes by the parent
	workerIndex int
	workerCount int
}

// listFlag collects a repeatable or comma-separated flag.
type listFlag struct{ vals *[]string }

func (l listFlag) String() string {
	if l.vals == nil {
		return ""
	}
	return strings.Join(*l.vals, ",")
}

func (l listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l.vals = append(*l.vals, v)
		}
	}
	return nil
}

// lossFlag parses a fraction ("0.001") or a percentage ("0.1%").
type lossFlag struct{ v *float64 }

func (l lossFlag) String() string {
	if l.v == nil || *l.v < 0 {
		return "off"
	}
	return strconv.FormatFloat(*l.v, 'g', -1, 64)
}

func (l lossFlag) Set(s string) error {
	pct := strings.HasSuffix(s, "%")
	f, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil {
		return fmt.Errorf("want a fraction like 0.001 or a percentage like 0.1%%")
	}
	if pct {
		f /= 100
	}
	if f < 0 || f > 1 {
		return fmt.Errorf("must be between 0 and 1 (or 0%% and 100%%)")
	}
	*l.v = f
	return nil
}

const usageHead = `wsload: load generator for wshub (PROTOCOL.md), many connections on few goroutines.

Usage: wsload SCENARIO [flags]     (or --scenario SCENARIO)

Scenarios:
  idle    --conns N connections, each subscribed to one of --channels, held for --duration
  fanout  --subs over --channels, --publishers publishing --rate/s (0 = max within --window) or --msgs
          (publishers on their own instance with --publish-target)
  churn   connect, subscribe, close at --rate/s, at most --conns at once
  storm   --conns connections drop at once (--storm-trigger client|server) and reconnect
  slow    like fanout, with --slow-fraction of subscribers not reading
  recover --conns subscribers over --channels of a history namespace (--namespace, default hist),
          --publishers publishing --rate/s for --duration; --disconnect-rate/s of the subscribers
          drop at random, stay away for --away, reconnect (round robin over --target) and
          subscribe with since; every offset after a subscriber's first ok must arrive once,
          in order, unless an ok says "recovered":false (counted apart as unrecovered);
          with --missed N instead: all drop at once, N are published per channel, all
          reconnect at once, --rounds times: time until all caught up, gateway CPU for it
  presence-churn
          --conns members (user i % --users) over --channels of a presence namespace with join_leave
          (--namespace, default pres; --jwt-secret needed: users are tokens' subs), --watchers that
          count joins and leaves; --churn-rate/s members drop, stay away for --away and come back as
          themselves; a querier times presence_stats and presence at --query-rate/s. Each churn is
          judged against --linger (the namespace's join_leave_linger): away shorter, no push at all
          (suppressed, else leaked); longer, one leave then one join (announced, else wrong)

Targets (--target, --publish-target):
  ws://host[:port][/path][?query]  port 80 when omitted, path /ws (--path) when omitted or "/",
                                   the query sent in the upgrade request; e.g. ws://127.0.0.1:8080/ws
  host:port                        path from --path (default /ws)
  Several are comma-separated (write a comma inside a query as %2C). No TLS: wss:// is refused.

Flags:
`

func parseFlags(args []string, out io.Writer) (*options, error) {
	o := &options{maxLoss: -1, maxErrors: -1}
	c := &o.cfg
	fs := flag.NewFlagSet("wsload", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(out, usageHead)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.Scenario, "scenario", "", "scenario (also the first argument)")
	fs.Var(listFlag{&c.Targets}, "target", "gateway `URL`, ws://host[:port][/path][?query] or host:port, repeatable or comma-separated (default 127.0.0.1:8080)")
	fs.Var(listFlag{&c.PublishTargets}, "publish-target", "fanout, slow, recover: gateway `URL`(s) the publishers connect to, same forms as --target (repeatable or comma-separated, round robin) while subscribers stay on --target: cross-instance delivery (default: publishers on --target too)")
	fs.StringVar(&c.Path, "path", loadtest.DefaultPath, "WebSocket path of host:port targets and of ws:// URLs without a path")
	fs.IntVar(&o.procs, "procs", 1, "worker processes (each holds at most ~19,900 sockets under a 20,000 open-file limit)")
	var srcs []string
	fs.Var(listFlag{&srcs}, "source-ips", "local IPv4 addresses to spread connections over: list or range (127.0.0.2-127.0.0.9)")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "main phase length (publishing, holding, churning, waiting for recovery)")
	fs.StringVar(&o.jsonFile, "json", "", "write the result as JSON to this file (- for stdout)")
	fs.IntVar(&c.Conns, "conns", 0, "connections (idle, storm), concurrent cap (churn), subscribers (recover) or members (presence-churn)")
	fs.IntVar(&c.Subs, "subs", 0, "subscribers (fanout, slow)")
	fs.IntVar(&c.Channels, "channels", 1, "channels; subscriber i is on channel i % channels")
	fs.IntVar(&c.Publishers, "publishers", 1, "publishers; each owns whole channels (so at most --channels)")
	fs.Int64Var(&c.Msgs, "msgs", 0, "publications in total (0: publish until --duration)")
	fs.Float64Var(&c.Rate, "rate", 0, "publications/s in total (churn: connections/s); 0 = as fast as --window allows (recover needs a rate)")
	fs.IntVar(&c.Size, "size", 64, "bytes of each publication's data (it carries a sequence number and the send time)")
	fs.StringVar(&c.Padding, "padding", loadtest.PaddingX, "what fills each publication's data past its sequence and time: x (a run of x, which deflate shrinks ~100x) or text (feed-like text, shrunk ~3x as JSON is: for --compression runs)")
	fs.IntVar(&c.Window, "window", 0, "publications in flight per publisher: unacknowledged, or not yet reached by the channel's subscribers on average (default 32 at max rate, 4096 with --rate)")
	fs.StringVar(&c.PublishHTTP, "publish-http", "", "publish with POST /api/publish on this admin host:port instead of over WebSocket")
	fs.StringVar(&c.Namespace, "namespace", "", "put the channels in this namespace: NAMESPACE:wsload.RUN.N (default none; recover: "+loadtest.DefaultRecoverNamespace+", which the gateway must give history; presence-churn: "+loadtest.DefaultPresenceNamespace+", with presence and join_leave)")
	fs.Float64Var(&c.DisconnectRate, "disconnect-rate", 0, "recover: subscribers dropped per second in total, at random (default --conns/4)")
	fs.Var(awayFlag{&c.AwayMin, &c.AwayMax}, "away", "recover, presence-churn: how long a dropped subscriber stays away: `MIN-MAX`, uniformly at random, or one duration (default 100ms-2s; presence-churn 100ms-1s)")
	fs.Int64Var(&c.Missed, "missed", 0, "recover in rounds instead of random drops: every subscriber drops at once, this many publications are made on each channel (at --rate, or as fast as --window allows), then all reconnect at once with since; reports the time until all caught up and the gateway's CPU for it (--server-pid)")
	fs.IntVar(&c.Rounds, "rounds", 0, "recover --missed: rounds to measure, each reported and their median (default 1)")
	fs.IntVar(&c.Users, "users", 0, "presence-churn: distinct users among the members, member i being user i % users (default --conns: one each)")
	fs.IntVar(&c.Watchers, "watchers", 0, "presence-churn: connections that only count joins and leaves, watcher j on channel j % channels (default one per channel; at least --channels)")
	fs.Float64Var(&c.ChurnRate, "churn-rate", 0, "presence-churn: members dropped per second in total (0: none, presence at rest)")
	fs.DurationVar(&c.Linger, "linger", 0, "presence-churn: the namespace's join_leave_linger, which the accounting expects (0: a leave and a join for every churn)")
	fs.Float64Var(&c.QueryRate, "query-rate", 10, "presence-churn: presence_stats queries per second, every tenth a presence (the members) instead")
	fs.Float64Var(&c.SlowFraction, "slow-fraction", 0.1, "slow: share of subscribers that stop reading")
	fs.StringVar(&c.StormTrigger, "storm-trigger", "client", "storm: client = wsload drops every connection; server = wait for the gateway to (drain, kill)")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "present an HS256 token minted with this secret on every connection, one sub each (wsload-N, unique in the run), minted before the run as far as its plan says how many")
	fs.Var(listFlag{&c.JWTChannels}, "jwt-channels", "the minted tokens' channels claim: `patterns` (names, prefix:*, *), comma-separated (default no claim); wsload's channels are wsload.RUN.N, which only * matches (with --namespace NS, NS:* does)")
	fs.DurationVar(&c.JWTTTL, "jwt-ttl", time.Hour, "the minted tokens' lifetime (exp), counted from when they are minted, before the run")
	fs.StringVar(&c.Token, "token", "", "present this token, minted elsewhere, on every connection")
	fs.BoolVar(&c.TokenHeader, "jwt-header", false, "present the token (--jwt-secret, --token) in Authorization: Bearer instead of ?token=")
	fs.BoolVar(&c.Compression, "compression", false, "offer permessage-deflate (no context takeover) on every connection, fail those where the gateway does not accept it, and inflate compressed messages")
	fs.IntVar(&c.Pollers, "pollers", 1, "epoll goroutines per process")
	fs.IntVar(&c.ConnectConcurrency, "connect-concurrency", 512, "handshakes in flight at once per process")
	fs.DurationVar(&c.HandshakeTimeout, "handshake-timeout", 10*time.Second, "connect + upgrade + subscribe deadline")
	fs.DurationVar(&c.Drain, "drain", 5*time.Second, "longest wait for deliveries after publishing stops")
	var pids []string
	fs.Var(listFlag{&pids}, "server-pid", "gateway process id(s), repeatable: report their summed RSS per connection and CPU (from /proc); give every targeted instance's")
	fs.Var(lossFlag{&o.maxLoss}, "max-loss", "exit 1 when lost/expected exceeds this (0.001 or 0.1%; default off)")
	fs.Int64Var(&o.maxErrors, "max-errors", -1, "exit 1 when errors exceed this (default off)")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines")
	fs.StringVar(&o.cpuProf, "cpuprofile", "", "write wsload's own CPU profile to this file (single process)")
	fs.StringVar(&c.RunID, "run-id", "", "channel name tag (default random; set by the parent for workers)")
	fs.IntVar(&o.workerIndex, "worker-index", 0, "internal: this worker's index")
	fs.IntVar(&o.workerCount, "worker-count", 0, "internal: number of workers")

	// The scenario may come first, before the flags.
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		c.Scenario = args[0]
		args = args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		if c.Scenario != "" || fs.NArg() > 1 {
			return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
		}
		c.Scenario = fs.Arg(0)
	}
	if len(c.Targets) == 0 {
		c.Targets = []string{"127.0.0.1:8080"}
	}
	if err := checkTTLFlag(fs, c); err != nil {
		return nil, err
	}
	for _, p := range pids {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("--server-pid: %q is not a process id", p)
		}
		o.serverPIDs = append(o.serverPIDs, n)
	}
	ips, err := expandIPs(srcs)
	if err != nil {
		return nil, err
	}
	c.SourceIPs = ips
	if o.procs < 1 {
		return nil, fmt.Errorf("--procs must be at least 1")
	}
	if o.procs > 1 && c.Scenario == loadtest.ScenarioPresence {
		return nil, fmt.Errorf("presence-churn runs in one process (--procs 1): its accounting matches every watcher's pushes against every churn on one clock")
	}
	if o.workerCount > 0 {
		c.Worker, c.Workers = o.workerIndex, o.workerCount
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// checkTTLFlag refuses a --jwt-ttl that would not do what it says: with
// nothing minted, or not positive (a zero Config.JWTTTL means the default,
// and a token without exp is one some gateways refuse).
func checkTTLFlag(fs *flag.FlagSet, c *loadtest.Config) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		switch {
		case f.Name != "jwt-ttl":
		case c.JWTSecret == "":
			err = fmt.Errorf("--jwt-ttl needs --jwt-secret")
		case c.JWTTTL <= 0:
			err = fmt.Errorf("--jwt-ttl must be positive")
		}
	})
	return err
}

// awayFlag parses --away: "MIN-MAX" or one duration for both.
type awayFlag struct{ lo, hi *time.Duration }

func (a awayFlag) String() string {
	if a.lo == nil || *a.lo == 0 && *a.hi == 0 {
		return ""
	}
	return a.lo.String() + "-" + a.hi.String()
}

func (a awayFlag) Set(s string) error {
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	l, err1 := time.ParseDuration(lo)
	h, err2 := time.ParseDuration(hi)
	if err1 != nil || err2 != nil || l < 0 || h < l {
		return fmt.Errorf("want MIN-MAX like 100ms-2s (0 <= MIN <= MAX), or one duration")
	}
	*a.lo, *a.hi = l, h
	return nil
}

// expandIPs turns "a.b.c.d" and "a.b.c.d-a.b.c.e" items into a list.
func expandIPs(items []string) ([]string, error) {
	var out []string
	for _, it := range items {
		lo, hi, isRange := strings.Cut(it, "-")
		a := net.ParseIP(lo).To4()
		if a == nil {
			return nil, fmt.Errorf("--source-ips: %q is not an IPv4 address", lo)
		}
		if !isRange {
			out = append(out, a.String())
			continue
		}
		b := net.ParseIP(hi).To4()
		if b == nil || a[0] != b[0] || a[1] != b[1] || a[2] != b[2] || b[3] < a[3] {
			return nil, fmt.Errorf("--source-ips: bad range %q (same /24, ascending)", it)
		}
		for x := int(a[3]); x <= int(b[3]); x++ {
			out = append(out, net.IPv4(a[0], a[1], a[2], byte(x)).String())
		}
	}
	return out, nil
}
