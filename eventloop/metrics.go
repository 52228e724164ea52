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
	"key", "host", "path", "origin", "too_large", "headers", "timeout", "other",
}

// metrics is the server's Prometheus collector. Hot-path counts live in each
// loop's stats (uncontended atomics) and are summed at scrape time.
type metrics struct {
	s         *Server
	handshake []atomic.Uint64 // by handshakeReasons index

	conns, hsFailures, slowDrops, refused, pongTimeouts *prometheus.Desc
	queueDepth, framesWritten, writevCalls, batches     *prometheus.Desc
}

func newMetrics(s *Server) *metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("wshub_eventloop_"+name, help, labels, nil)
	}
	return &metrics{
		s:             s,
		handshake:     make([]atomic.Uint64, len(handshakeReasons)),
		conns:         d("connections", "Open connections, upgraded or not."),
		hsFailures:    d("handshake_failures_total", "Upgrades refused or timed out, by reason.", "reason"),
		slowDrops:     d("slow_consumer_drops_total", "Connections dropped because their send queue or socket buffer overflowed (close 1008)."),
		refused:       d("refused_connections_total", "Connections closed at accept: over MaxConns or shutting down."),
		pongTimeouts:  d("pong_timeouts_total", "Connections closed for not answering a ping in time."),
		queueDepth:    d("send_queue_depth", "Frames queued in connection send rings, by loop.", "loop"),
		framesWritten: d("frames_written_total", "Frames handed to the sockets from send rings."),
		writevCalls:   d("writev_calls_total", "Writev calls that carried those frames."),
		batches:       d("post_batches_total", "Batches of posted functions run: each is one loop wake-up, however many posts it holds."),
	}
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
		m.pongTimeouts, m.queueDepth, m.framesWritten, m.writevCalls, m.batches} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	var slow, refused, pong, frames, writevs, batches uint64
	for _, l := range m.s.loops {
		st := &l.stats
		slow += st.slowDrops.Load()
		refused += st.refused.Load()
		pong += st.pongTimeouts.Load()
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
	}{{m.slowDrops, slow}, {m.refused, refused}, {m.pongTimeouts, pong}, {m.framesWritten, frames}, {m.writevCalls, writevs}, {m.batches, batches}} {
		ch <- prometheus.MustNewConstMetric(c.d, prometheus.CounterValue, float64(c.v))
	}
}
