package loadtest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// engine owns the pollers and the state every scenario shares. Connections
// live on pollers; a scenario drives them by posting tasks and watching
// the atomic counters.
type engine struct {
	cfg       *Config
	targets   []target // subscriber targets, then publisher targets
	nSub      int32    // how many of targets take subscribers
	srcIPs    [][4]byte
	nextSrc   atomic.Uint32
	pollers   []*poller
	start     time.Time
	wg        sync.WaitGroup
	prefix    string   // channel name prefix, "[<namespace>:]wsload.<run>."
	chanNames [][]byte // channel index -> name
	pad       []byte   // --padding text: what publications are padded from (nil: x)

	// Per channel: the publisher's sequence (owned by that publisher's
	// poller or goroutine), the rejected publishes, and, over this
	// process's live normal subscribers, their count and the sum of the
	// highest sequence each has seen. Publishers gate on the difference.
	seq      []int64
	rejected []atomic.Int64
	liveSubs []atomic.Int64
	maxSum   []atomic.Int64

	httpCtr counters        // HTTP publishers' counters
	tokens  *tokenSource    // what each upgrade presents; nil: no token
	pres    *presenceShared // presence-churn only

	publishing atomic.Bool // publishers pump while set
	dropping   atomic.Bool // recover: pollers drop subscribers at random while set
	stopping   atomic.Bool // teardown: no reconnects

	// recover --missed, the current round: when its reconnect burst began
	// (monotonic ns), how many of its subscribers have not settled, and
	// closed when the last one has (set by the runner before the burst).
	burstAt   atomic.Int64
	burstLeft atomic.Int64
	burstDone chan struct{}
	stopOnce  sync.Once
}

// target is one gateway endpoint.
type target struct {
	sa   unix.SockaddrInet4 // copied per dial: Connect writes into it
	host string             // Host header
	uri  string             // request target of the upgrade: path and query
}

func newEngine(cfg *Config) (*engine, error) {
	e := &engine{cfg: cfg, start: time.Now(), tokens: newTokenSource(cfg)}
	if cfg.Padding == PaddingText {
		e.pad = textPadding(2*cfg.Size + 4096)
	}
	for _, l := range []struct {
		flag string
		list []string
	}{{"--target", cfg.Targets}, {"--publish-target", cfg.PublishTargets}} {
		specs, err := parseTargets(l.flag, l.list, cfg.Path)
		if err != nil {
			return nil, err
		}
		for i, sp := range specs {
			tg, err := resolveTarget(sp)
			if err != nil {
				return nil, fmt.Errorf("%s %q: %v", l.flag, l.list[i], err)
			}
			e.targets = append(e.targets, tg)
		}
	}
	e.nSub = int32(len(cfg.Targets))
	if e.nSub == 0 {
		return nil, fmt.Errorf("no --target given")
	}
	for _, s := range cfg.SourceIPs {
		ip := net.ParseIP(s).To4()
		if ip == nil {
			return nil, fmt.Errorf("source IP %q is not an IPv4 address", s)
		}
		e.srcIPs = append(e.srcIPs, [4]byte(ip))
	}
	e.prefix = "wsload." + cfg.RunID + "."
	if cfg.Namespace != "" {
		e.prefix = cfg.Namespace + ":" + e.prefix
	}
	e.chanNames = make([][]byte, cfg.Channels)
	for i := range e.chanNames {
		e.chanNames[i] = []byte(e.prefix + strconv.Itoa(i))
	}
	e.seq = make([]int64, cfg.Channels)
	e.rejected = make([]atomic.Int64, cfg.Channels)
	e.liveSubs = make([]atomic.Int64, cfg.Channels)
	e.maxSum = make([]atomic.Int64, cfg.Channels)
	if cfg.Scenario == ScenarioPresence {
		e.pres = newPresenceShared(cfg)
	}
	n := cfg.Pollers
	if n <= 0 {
		n = 1
	}
	for i := 0; i < n; i++ {
		p, err := newPoller(e, i)
		if err != nil {
			for _, q := range e.pollers {
				unix.Close(q.epfd)
				unix.Close(q.evfd)
			}
			return nil, err
		}
		e.pollers = append(e.pollers, p)
	}
	for _, p := range e.pollers {
		e.wg.Add(1)
		go func() { defer e.wg.Done(); p.run() }()
	}
	return e, nil
}

// resolveTarget looks up a parsed target's IPv4 address.
func resolveTarget(sp targetSpec) (target, error) {
	host, port, err := net.SplitHostPort(sp.addr)
	if err != nil {
		return target{}, err
	}
	pn, err := strconv.Atoi(port)
	if err != nil {
		return target{}, err
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return target{}, err
	}
	for _, ip := range ips {
		if v4 := ip.To4(); v4 != nil {
			return target{sa: unix.SockaddrInet4{Port: pn, Addr: [4]byte(v4)}, host: sp.host, uri: sp.uri}, nil
		}
	}
	return target{}, fmt.Errorf("no IPv4 address for %s (wsload dials IPv4 only)", host)
}

// subTarget is the target of subscriber (or plain connection) i: the
// subscriber targets, round robin.
func (e *engine) subTarget(i int32) int32 { return i % e.nSub }

// pubTarget is the target of publisher k (numbered across workers; its
// connection index is idx): the publish targets round robin when there
// are any, else the same round robin as subscribers.
func (e *engine) pubTarget(k, idx int32) int32 {
	if n := int32(len(e.targets)) - e.nSub; n > 0 {
		return e.nSub + k%n
	}
	return e.subTarget(idx)
}

// now is the engine's monotonic clock in nanoseconds.
func (e *engine) now() int64 { return int64(time.Since(e.start)) }

// channelOf maps a channel name back to its index, -1 for a foreign name.
func (e *engine) channelOf(name []byte) int32 {
	if len(name) <= len(e.prefix) || string(name[:len(e.prefix)]) != e.prefix {
		return -1
	}
	n := parseInt(name[len(e.prefix):], -1)
	if n < 0 || n >= int64(len(e.chanNames)) {
		return -1
	}
	return int32(n)
}

// behind reports whether channel ch's live subscribers in this process
// are, on average, window or more publications behind its publisher.
// Highest sequences (not counts) are compared, so lost publications do
// not hold the publisher back forever.
func (e *engine) behind(ch int32, window int64) bool {
	live := e.liveSubs[ch].Load()
	return live > 0 && e.seq[ch]*live-e.maxSum[ch].Load() >= window*live
}

// each runs f on every poller and waits for all of them.
func (e *engine) each(f func(p *poller)) {
	var wg sync.WaitGroup
	for _, p := range e.pollers {
		wg.Add(1)
		p.post(func() { f(p); wg.Done() })
	}
	wg.Wait()
}

// sumCounters adds up every poller's live counters.
func (e *engine) sumCounters() liveCounts {
	var s liveCounts
	for _, p := range e.pollers {
		s.add(p.ctr.load())
	}
	s.add(e.httpCtr.load())
	return s
}

// shutdown closes every connection abruptly and stops the pollers.
func (e *engine) shutdown() {
	e.stopOnce.Do(func() {
		e.stopping.Store(true)
		e.publishing.Store(false)
		for _, p := range e.pollers {
			p.post(p.teardown)
		}
		e.wg.Wait()
	})
}

// randomKey returns a fresh Sec-WebSocket-Key.
func randomKey() []byte {
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	out := make([]byte, base64.StdEncoding.EncodedLen(len(raw)))
	base64.StdEncoding.Encode(out, raw[:])
	return out
}

func seed() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}
