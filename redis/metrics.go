package redis

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats are the broker's counters since New; they back the Prometheus metrics.
type Stats struct {
	Reconnects           uint64 // subscription connections re-established after a loss
	ResubscribedChannels uint64 // channels subscribed again after a reconnect or slot move
	ProbeFailures        uint64 // probes that did not come back within ProbeTimeout
	DroppedMessages      uint64 // incoming messages that could not be handed on (malformed, no handler)
	PublishErrors        uint64 // publications that failed (Redis error, timeout, full queue, down)
	ReadErrors           uint64 // history reads that failed (Redis error, timeout, full queue, down)
	SubscribeCommands    uint64 // SUBSCRIBE/SSUBSCRIBE commands sent (batching shows as channels >> commands)
	RegistryCommands     uint64 // Redis commands issued by the registry
	PresenceCommands     uint64 // Redis commands issued by the presence store (writes and queries)
	SubscribedChannels   int64  // channels currently confirmed by Redis on live connections
}

// stats are the live counters; atomics, written by every goroutine of the
// broker and read by snapshot and the metrics.
type stats struct {
	reconnects, resubscribed, probeFailures, dropped, publishErrors atomic.Uint64
	readErrors, subscribeCmds, registryCmds, presenceCmds           atomic.Uint64
	subscribed                                                      atomic.Int64
}

func (s *stats) snapshot() Stats {
	return Stats{
		Reconnects:           s.reconnects.Load(),
		ResubscribedChannels: s.resubscribed.Load(),
		ProbeFailures:        s.probeFailures.Load(),
		DroppedMessages:      s.dropped.Load(),
		PublishErrors:        s.publishErrors.Load(),
		ReadErrors:           s.readErrors.Load(),
		SubscribeCommands:    s.subscribeCmds.Load(),
		RegistryCommands:     s.registryCmds.Load(),
		PresenceCommands:     s.presenceCmds.Load(),
		SubscribedChannels:   s.subscribed.Load(),
	}
}

// register exposes the counters, and ready as a gauge, as wshub_redis_*
// metrics read at scrape time, so the hot paths only touch atomics.
func (s *stats) register(reg prometheus.Registerer, ready func() bool) error {
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "wshub", Subsystem: "redis", Name: name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	cs := []prometheus.Collector{
		counter("reconnects_total", "Pub/sub connections re-established after a loss.", &s.reconnects),
		counter("resubscribed_channels_total", "Channels subscribed again after a reconnect or a slot move.", &s.resubscribed),
		counter("probe_failures_total", "Liveness probes that did not come back in time.", &s.probeFailures),
		counter("dropped_messages_total", "Incoming messages that could not be handed on.", &s.dropped),
		counter("publish_errors_total", "Publications that failed.", &s.publishErrors),
		counter("history_read_errors_total", "History reads that failed.", &s.readErrors),
		counter("subscribe_commands_total", "SUBSCRIBE/SSUBSCRIBE commands sent.", &s.subscribeCmds),
		counter("registry_commands_total", "Redis commands issued by the connection registry.", &s.registryCmds),
		counter("presence_commands_total", "Redis commands issued by the presence store.", &s.presenceCmds),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wshub", Subsystem: "redis", Name: "subscribed_channels", Help: "Channels confirmed by Redis on live connections."},
			func() float64 { return float64(s.subscribed.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wshub", Subsystem: "redis", Name: "ready", Help: "1 while every pub/sub connection is up and resubscribed."},
			func() float64 {
				if ready() {
					return 1
				}
				return 0
			}),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
