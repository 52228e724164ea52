package loadtest

import (
	"fmt"
	"strings"
	"time"
)

// Scenario names accepted by Config.Scenario.
const (
	ScenarioIdle    = "idle"
	ScenarioFanout  = "fanout"
	ScenarioChurn   = "churn"
	ScenarioStorm   = "storm"
	ScenarioSlow    = "slow"
	ScenarioRecover = "recover"
	// ScenarioPresence churns the members of presence channels and
	// accounts for the joins and leaves watchers see (presence.go).
	ScenarioPresence = "presence-churn"
)

// DefaultRecoverNamespace is the namespace of the recover scenario's
// channels unless Config.Namespace says otherwise: the one a gateway's
// configuration gives history (namespaces: {hist: {history_size: ...}}).
const DefaultRecoverNamespace = "hist"

// DefaultPresenceNamespace is presence-churn's namespace unless
// Config.Namespace says otherwise: one the gateway gives presence, and
// join_leave for the watchers (namespaces: {pres: {presence: true,
// join_leave: true, presence_for: anyone}}).
const DefaultPresenceNamespace = "pres"

// Config describes one load-generator run (or one worker's share of it).
type Config struct {
	Scenario       string
	Targets        []string // gateways, ws://host[:port][/path][?query] or host:port; connections go round robin
	PublishTargets []string // fanout, slow: publishers connect here (round robin, same forms), subscribers stay on Targets
	Path           string   // WebSocket path of host:port targets and of URLs without one, default DefaultPath
	SourceIPs      []string // local IPv4 addresses to bind, round robin (empty: kernel's choice)
	Pollers        int      // epoll goroutines, default 1

	Conns      int           // idle, churn (concurrent cap), storm: connections; recover: subscribers
	Subs       int           // fanout, slow: subscribers
	Channels   int           // channels; subscriber i is on channel i % Channels
	Publishers int           // fanout, slow, recover: publishers (each owns whole channels)
	Msgs       int64         // fanout, slow, recover: messages to publish in total (0: until Duration)
	Rate       float64       // publishes/s in total (churn: connections/s); 0 = as fast as the window allows
	Size       int           // bytes of each publication's data value (at least the header fields)
	Padding    string        // what fills the data beyond its header fields: PaddingX (default) or PaddingText
	Duration   time.Duration // main phase length
	Window     int           // publishes in flight per publisher: unacknowledged, or not yet reached by its channel's subscribers on average

	PublishHTTP  string  // admin address: publish with POST /api/publish instead of over WebSocket
	SlowFraction float64 // slow: share of subscribers that stop reading
	StormTrigger string  // storm: "client" (we drop every connection) or "server" (wait for the gateway to)

	// Namespace puts every channel in a namespace: NAMESPACE:wsload.RUN.N
	// (PROTOCOL.md, "Authentication and permissions"). Empty: the default
	// namespace, except recover's DefaultRecoverNamespace.
	Namespace string

	// recover: subscribers dropped per second in total (0: a quarter of
	// Conns), each away for a random time in [AwayMin, AwayMax] before it
	// reconnects (round robin over Targets) and subscribes with since.
	DisconnectRate float64
	AwayMin        time.Duration
	AwayMax        time.Duration

	// recover, in rounds instead of random drops (Missed > 0): every
	// subscriber drops at once, Missed publications are made on each
	// channel while they are away, and all reconnect at once with since;
	// Rounds times (default 1). Duration caps each round's publishing and
	// its catching up.
	Missed int64
	Rounds int

	// presence-churn: Conns members over Channels (member i is user
	// i % Users, Users 0 meaning Conns: one each), plus Watchers (total,
	// watcher j on channel j % Channels, its own user) that only count
	// joins and leaves. ChurnRate members per second are dropped (away
	// AwayMin-AwayMax, then back as the same user); Linger is the
	// namespace's join_leave_linger, which the accounting expects; one
	// querier asks presence_stats (and every tenth time presence) at
	// QueryRate per second.
	Users     int
	Watchers  int
	ChurnRate float64
	Linger    time.Duration
	QueryRate float64

	// What every upgrade presents (PROTOCOL.md, "Authentication"): nothing,
	// a token minted for the connection, or one fixed token.
	JWTSecret   string        // mint an HS256 token per connection with this secret, sub "wsload-N" (N unique in the run)
	JWTChannels []string      // the minted tokens' channels claim (nil: none); wsload's channels are wsload.RUN.N, so only "*" lets them subscribe
	JWTTTL      time.Duration // the minted tokens' lifetime, from before the run (they are minted ahead); default 1h
	Token       string        // one token for every connection, minted elsewhere
	TokenHeader bool          // present it in Authorization: Bearer instead of the token query parameter

	// Compression offers permessage-deflate on every connection, requires
	// it accepted and inflates what comes compressed.
	Compression bool

	ConnectConcurrency int           // handshakes in flight at once per process
	HandshakeTimeout   time.Duration // connect+upgrade+subscribe deadline per connection
	Drain              time.Duration // longest wait for stragglers after publishing stops

	RunID   string // distinguishes channel names of concurrent runs
	Worker  int    // this process's index among Workers
	Workers int    // processes sharing the run (1 = alone)
}

// Defaults fills unset fields with their defaults.
func (c *Config) Defaults() {
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if c.Pollers <= 0 {
		c.Pollers = 1
	}
	if c.Channels <= 0 {
		c.Channels = 1
	}
	if c.Publishers <= 0 {
		c.Publishers = 1
	}
	if c.Size <= 0 {
		c.Size = 64
	}
	if c.Padding == "" {
		c.Padding = PaddingX
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Window <= 0 {
		if c.Rate > 0 {
			c.Window = 4096
		} else {
			c.Window = 32
		}
	}
	if c.SlowFraction <= 0 {
		c.SlowFraction = 0.1
	}
	if c.StormTrigger == "" {
		c.StormTrigger = "client"
	}
	if c.ConnectConcurrency <= 0 {
		c.ConnectConcurrency = 512
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.Drain <= 0 {
		c.Drain = 5 * time.Second
	}
	if c.RunID == "" {
		c.RunID = fmt.Sprintf("%08x", uint32(seed()))
	}
	if c.Workers <= 0 {
		c.Workers = 1
	}
	if c.JWTTTL == 0 {
		c.JWTTTL = time.Hour
	}
	if c.Scenario == ScenarioPresence {
		c.presenceDefaults()
	}
	if c.Scenario == ScenarioRecover {
		if c.Namespace == "" {
			c.Namespace = DefaultRecoverNamespace
		}
		switch {
		case c.Missed > 0: // rounds: no random drops to default
			if c.Rounds <= 0 {
				c.Rounds = 1
			}
		default:
			if c.DisconnectRate == 0 {
				c.DisconnectRate = float64(c.Conns) / 4
			}
			if c.AwayMin == 0 && c.AwayMax == 0 {
				c.AwayMin, c.AwayMax = 100*time.Millisecond, 2*time.Second
			}
		}
	}
}

// Validate reports the first inconsistent setting.
func (c *Config) Validate() error {
	switch c.Scenario {
	case ScenarioIdle, ScenarioChurn, ScenarioStorm:
		if c.Conns <= 0 {
			return fmt.Errorf("%s needs --conns > 0", c.Scenario)
		}
	case ScenarioFanout, ScenarioSlow:
		if c.Subs <= 0 {
			return fmt.Errorf("%s needs --subs > 0", c.Scenario)
		}
		if c.Publishers > c.Channels {
			return fmt.Errorf("--publishers %d > --channels %d: each channel has exactly one publisher so its sequence numbers are exact", c.Publishers, c.Channels)
		}
		if c.Scenario == ScenarioSlow && (c.SlowFraction <= 0 || c.SlowFraction >= 1) {
			return fmt.Errorf("--slow-fraction must be in (0,1)")
		}
	case ScenarioRecover:
		if err := c.validateRecover(); err != nil {
			return err
		}
	case ScenarioPresence:
		if err := c.validatePresence(); err != nil {
			return err
		}
	case "":
		return fmt.Errorf("no scenario given (%s)", scenarioList)
	default:
		return fmt.Errorf("unknown scenario %q (%s)", c.Scenario, scenarioList)
	}
	if err := checkNamespace(c.Namespace); err != nil {
		return err
	}
	if len(c.Targets) == 0 {
		return fmt.Errorf("no --target given")
	}
	if err := checkPath(c.Path); err != nil {
		return err
	}
	subs, err := parseTargets("--target", c.Targets, c.Path)
	if err != nil {
		return err
	}
	pubs, err := parseTargets("--publish-target", c.PublishTargets, c.Path)
	if err != nil {
		return err
	}
	var uris []string
	for _, t := range append(subs, pubs...) {
		uris = append(uris, t.uri)
	}
	if err := c.validateTokens(uris); err != nil {
		return err
	}
	if len(c.PublishTargets) > 0 {
		if c.Scenario != ScenarioFanout && c.Scenario != ScenarioSlow && c.Scenario != ScenarioRecover {
			return fmt.Errorf("--publish-target applies to fanout, slow and recover only, not %s", c.Scenario)
		}
		if c.PublishHTTP != "" {
			return fmt.Errorf("--publish-target and --publish-http are exclusive: publishers use WebSocket or HTTP")
		}
	}
	if c.Rate < 0 || c.Msgs < 0 || c.Size < 0 {
		return fmt.Errorf("--rate, --msgs and --size must not be negative")
	}
	if c.Padding != PaddingX && c.Padding != PaddingText {
		return fmt.Errorf("--padding must be %s or %s", PaddingX, PaddingText)
	}
	if c.StormTrigger != "client" && c.StormTrigger != "server" {
		return fmt.Errorf("--storm-trigger must be client or server")
	}
	if c.Worker < 0 || c.Worker >= c.Workers {
		return fmt.Errorf("worker %d of %d", c.Worker, c.Workers)
	}
	return nil
}

const scenarioList = "idle, fanout, churn, storm, slow, recover, presence-churn"

// validateRecover checks the recover scenario's own settings.
func (c *Config) validateRecover() error {
	switch {
	case c.Conns <= 0:
		return fmt.Errorf("recover needs --conns > 0 (subscribers)")
	case c.Publishers > c.Channels:
		return fmt.Errorf("--publishers %d > --channels %d: each channel has exactly one publisher", c.Publishers, c.Channels)
	case c.Missed != 0 || c.Rounds != 0:
		return c.validateRounds()
	case c.Rate <= 0:
		// At max rate the publishers would pace on the subscribers, and
		// away ones would make the rate anything but steady.
		return fmt.Errorf("recover needs --rate > 0: publications/s in total, steady through the run")
	case c.DisconnectRate < 0:
		return fmt.Errorf("--disconnect-rate must not be negative")
	case c.AwayMin < 0 || c.AwayMax < c.AwayMin:
		return fmt.Errorf("--away %v-%v: want 0 <= MIN <= MAX", c.AwayMin, c.AwayMax)
	}
	return nil
}

// validateRounds checks recover's settings in rounds (--missed), where
// the random drops' settings have no meaning.
func (c *Config) validateRounds() error {
	switch {
	case c.Missed <= 0:
		return fmt.Errorf("--missed must be positive (--rounds applies to recover --missed)")
	case c.Rounds <= 0:
		return fmt.Errorf("--rounds must be positive")
	case c.DisconnectRate != 0 || c.AwayMin != 0 || c.AwayMax != 0:
		return fmt.Errorf("--disconnect-rate and --away are for random drops; --missed drops every subscriber at once")
	case c.Msgs != 0:
		return fmt.Errorf("--msgs does not apply to --missed: each round publishes --missed per channel")
	case c.Rate > 0 && float64(c.Missed*int64(c.Channels))/c.Rate > c.Duration.Seconds():
		return fmt.Errorf("--missed %d on %d channels at --rate %g takes longer than --duration %v, which caps each round's publishing", c.Missed, c.Channels, c.Rate, c.Duration)
	}
	return nil
}

// checkNamespace refuses a namespace that would not make valid channel
// names, or would not be the part before the first ":".
func checkNamespace(ns string) error {
	for i := 0; i < len(ns); i++ {
		if !channelByte(ns[i]) || ns[i] == ':' {
			return fmt.Errorf("--namespace %q: byte %q is not allowed (A-Z a-z 0-9 _ - . @ / =)", ns, ns[i])
		}
	}
	return nil
}

// channelByte reports whether b may appear in a channel name (PROTOCOL.md).
func channelByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("_-.:@/=", b) >= 0
}

// mine reports whether global index i (connection, subscriber) belongs to
// this worker.
func (c *Config) mine(i int) bool { return i%c.Workers == c.Worker }

// ownsChannel reports whether this worker publishes on channel ch; channel
// ch's first subscriber (index ch) lives in the same worker, so the
// publisher always sees some of its channel's subscribers.
func (c *Config) ownsChannel(ch int) bool { return ch%c.Workers == c.Worker }
