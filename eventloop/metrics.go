package eventloop

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// handshakeReasons are the label values of handshake failures: wsproto's
// reject reasons, "timeout" for an upgrade not finished in time, and "other"
// for anything new.
var handshakeReasons = []string{
	"malformed", "method", "http_version", "version", "upgrade", "connection",
	"key", "host", "path", "origin", "too_large", "headers", "extensions", "timeout", "other",
}

// upgradeStatuses label the upgrades an Upgrader refused, by the HTTP status
// it chose; the last is every other status.
var upgradeStatuses = [...]int{401, 403, 429, 431, 503, 0}

// refusedReasons label refused connections, indexed by the refused* constants.
var refusedReasons = [...]string{refusedMaxConns: "max_conns", refusedStopping: "shutting_down", refusedMemory: "memory",
	refusedIPConns: "ip_conns", refusedIPRate: "ip_rate", refusedIPTable: "ip_table_full"}

// Why a connection was refused.
const (
	refusedMaxConns = iota // over MaxConns: the descriptor budget
	refusedStopping        // the server is draining
	refusedMemory          // upgrade answered 503: memory near MemoryLimit
	refusedIPConns         // upgrade answered 429: the source has MaxConnsPerIP connections
	refusedIPRate          // upgrade answered 429: the source is over HandshakesPerIPPerS
	refusedIPTable         // upgrade answered 429: no room for the source in the per-IP table
	numRefused
)

// limitReasons label connections closed by the partial-input limits, indexed
// by the limit* constants.
var limitReasons = [...]string{limitBudget: "partial_budget", limitFragments: "fragments", limitTimeout: "message_timeout"}

// Which partial-input limit closed a connection.
const (
	limitBudget    = iota // MaxPartialBytes reached (1008)
	limitFragments        // MaxFragments passed (1009)
	limitTimeout          // MessageTimeout passed (1008)
	numLimits
)

// metrics is the server's Prometheus collector. Hot-path counts live in each
// loop's stats (uncontended atomics) and are summed at scrape time.
type metrics struct {
	s         *Server
	handshake []atomic.Uint64 // by handshakeReasons index
	upgrades  [len(upgradeStatuses)]atomic.Uint64

	upgradesRefused, expired *prometheus.Desc

	conns, hsFailures, slowDrops, refused, pongTimeouts *prometheus.Desc
	queueDepth, framesWritten, writevCalls, batches     *prometheus.Desc
	maxConns, partial, maxPartial, limitCloses          *prometheus.Desc
	ipEntries, ipEvictions                              *prometheus.Desc
	deflate                                             deflateMetrics // compression.go
}

func newMetrics(s *Server) *metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("wshub_eventloop_"+name, help, labels, nil)
	}
	return &metrics{
		s:               s,
		handshake:       make([]atomic.Uint64, len(handshakeReasons)),
		conns:           d("connections", "Open connections, upgraded or not."),
		hsFailures:      d("handshake_failures_total", "Upgrades refused or timed out, by reason.", "reason"),
		slowDrops:       d("slow_consumer_drops_total", "Connections dropped because their send queue or socket buffer overflowed (close 1008)."),
		refused:         d("refused_connections_total", "Connections refused: at accept over the connection ceiling (max_conns) or while draining (shutting_down); at the upgrade with 503 near the memory limit (memory), with 429 over the source's connections (ip_conns) or upgrade rate (ip_rate) or with no room for it in the per-IP table (ip_table_full).", "reason"),
		maxConns:        d("max_connections", "The connection ceiling: --max-conns, or what the descriptor budget leaves."),
		partial:         d("partial_bytes", "Bytes connections hold in unfinished upgrades, frames and fragmented messages."),
		maxPartial:      d("max_partial_bytes", "The ceiling on partial_bytes; the connection that would pass it is closed with 1008."),
		limitCloses:     d("partial_limit_closes_total", "Connections closed by a partial-input limit: partial_budget (1008), fragments (1009), message_timeout (1008).", "reason"),
		pongTimeouts:    d("pong_timeouts_total", "Connections closed for not answering a ping in time."),
		expired:         d("expired_total", "Connections whose expiry (their token's exp) passed: closed with 1008."),
		upgradesRefused: d("upgrades_refused_total", "Upgrade requests the handler refused (bad token, limits), by the HTTP status answered.", "status"),
		queueDepth:      d("send_queue_depth", "Frames queued in connection send rings, by loop.", "loop"),
		framesWritten:   d("frames_written_total", "Frames handed to the sockets from send rings, and pongs."),
		writevCalls:     d("writev_calls_total", "Writes (writev, or write for pongs alone) that carried those frames."),
		batches:         d("post_batches_total", "Batches of posted functions run: each is one loop wake-up, however many posts it holds."),
		ipEntries:       d("ip_table_entries", "Sources (IPv4 addresses, IPv6 /64s) in the per-IP limits table: those with connections or a recent upgrade."),
		ipEvictions:     d("ip_table_evictions_total", "Sources whose upgrade-rate state was dropped to make room in a full per-IP table: their next upgrade starts a fresh bucket."),
		deflate:         newDeflateMetrics(d),
	}
}

// refusedUpgrade counts an upgrade the Upgrader refused with code.
func (m *metrics) refusedUpgrade(code int) {
	i := len(upgradeStatuses) - 1
	for j, s := range upgradeStatuses[:i] {
		if s == code {
			i = j
			break
		}
	}
	m.upgrades[i].Add(1)
}

// handshakeFailure counts a failed upgrade (rare: a linear scan is fine).
func (m *metrics) handshakeFailure(reason string) {
	i := len(handshakeReasons) - 1
	for j, r := range handshakeReasons {
		if r == reason {
			i = j
			break
		}
	}
	m.handshake[i].Add(1)
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.conns, m.hsFailures, m.slowDrops, m.refused,
		m.pongTimeouts, m.queueDepth, m.framesWritten, m.writevCalls, m.batches,
		m.maxConns, m.partial, m.maxPartial, m.limitCloses, m.expired, m.upgradesRefused, m.ipEntries, m.ipEvictions} {
		ch <- d
	}
	m.deflate.describe(ch)
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	var slow, pong, frames, writevs, batches, expired uint64
	var refused [numRefused]uint64
	var limits [numLimits]uint64
	for _, l := range m.s.loops {
		st := &l.stats
		slow += st.slowDrops.Load()
		for i := range refused {
			refused[i] += st.refused[i].Load()
		}
		for i := range limits {
			limits[i] += st.limitCloses[i].Load()
		}
		pong += st.pongTimeouts.Load()
		expired += st.expired.Load()
		frames += st.framesWritten.Load()
		writevs += st.writevCalls.Load()
		batches += st.batches.Load()
		ch <- prometheus.MustNewConstMetric(m.queueDepth, prometheus.GaugeValue,
			float64(st.queued.Load()), strconv.Itoa(l.idx))
	}
	ch <- prometheus.MustNewConstMetric(m.conns, prometheus.GaugeValue, float64(m.s.conns.Load()))
	for i, r := range handshakeReasons {
		ch <- prometheus.MustNewConstMetric(m.hsFailures, prometheus.CounterValue, float64(m.handshake[i].Load()), r)
	}
	for _, c := range []struct {
		d *prometheus.Desc
		v uint64
	}{{m.slowDrops, slow}, {m.pongTimeouts, pong}, {m.framesWritten, frames}, {m.writevCalls, writevs}, {m.batches, batches}, {m.expired, expired}} {
		ch <- prometheus.MustNewConstMetric(c.d, prometheus.CounterValue, float64(c.v))
	}
	for i, r := range refusedReasons {
		ch <- prometheus.MustNewConstMetric(m.refused, prometheus.CounterValue, float64(refused[i]), r)
	}
	for i, s := range upgradeStatuses {
		label := "other"
		if s != 0 {
			label = strconv.Itoa(s)
		}
		ch <- prometheus.MustNewConstMetric(m.upgradesRefused, prometheus.CounterValue, float64(m.upgrades[i].Load()), label)
	}
	for i, r := range limitReasons {
		ch <- prometheus.MustNewConstMetric(m.limitCloses, prometheus.CounterValue, float64(limits[i]), r)
	}
	ch <- prometheus.MustNewConstMetric(m.maxConns, prometheus.GaugeValue, float64(m.s.maxConns))
	ch <- prometheus.MustNewConstMetric(m.partial, prometheus.GaugeValue, float64(m.s.partial.Load()))
	ch <- prometheus.MustNewConstMetric(m.maxPartial, prometheus.GaugeValue, float64(m.s.cfg.MaxPartialBytes))
	var ipEntries int
	var ipEvictions uint64
	if ips := m.s.ips; ips != nil {
		ipEntries, ipEvictions = ips.entries(), ips.evictions()
	}
	ch <- prometheus.MustNewConstMetric(m.ipEntries, prometheus.GaugeValue, float64(ipEntries))
	ch <- prometheus.MustNewConstMetric(m.ipEvictions, prometheus.CounterValue, float64(ipEvictions))
	m.deflate.collect(m.s, ch)
}
