package hub

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Hot counters live per loop (each loop writes its own cache lines) and are
// summed when Prometheus scrapes.

// loopCounters are one loop's counters.
type loopCounters struct {
	commands   [numOps]atomic.Uint64
	errors     [numCodes]atomic.Uint64
	deliveries atomic.Uint64 // frames handed to Conn.Send and accepted
	dropped    atomic.Uint64 // Conn.Send refused (closing or slow consumer)
	directs    atomic.Uint64 // addressed sends queued to their connection
	replayed   atomic.Uint64 // history frames queued by recoveries
	latency    histogram
}

// hubStats are counters outside the loops.
type hubStats struct {
	apiPublishes atomic.Uint64
	directMissed atomic.Uint64   // SendDirect for no open local connection
	refused      []atomic.Uint64 // upgrades refused, by refusalReasons index
	refreshes    atomic.Uint64   // tokens replaced by a refresh
	rateClosed   atomic.Uint64   // connections closed for exceeding the rate limits again and again
	resubscribed atomic.Uint64   // broker subscriptions restored after a loss (Resubscribed)

	// History channels at this instance (gaprepair.go).
	repairs          atomic.Uint64 // repair reads issued (a gap, or a restored subscription)
	repaired         atomic.Uint64 // publications a repair delivered
	lost             atomic.Uint64 // offsets a repair could not find
	repairsAbandoned atomic.Uint64 // repairs given up: too much live traffic held behind them
	streamDuplicates atomic.Uint64 // publications at or before the position already handed out

	// Joins and leaves (joinleave.go).
	eventsSent       atomic.Uint64 // join and leave frames handed to local subscribers
	eventsSuppressed atomic.Uint64 // joins and leaves not sent: a reconnect within the linger
	eventsDropped    atomic.Uint64 // received for a channel without join_leave here, or malformed
	eventsFailed     atomic.Uint64 // joins and leaves the broker did not take
}

// upgradeRefused counts a refused upgrade by reason (rare enough for a scan).
func (s *hubStats) upgradeRefused(reason string) {
	for i, r := range refusalReasons {
		if r == reason {
			s.refused[i].Add(1)
			return
		}
	}
	s.refused[0].Add(1) // the verifier's first reason: malformed
}

// latencyBounds are the fan-out latency bucket upper bounds in seconds.
var latencyBounds = [...]float64{
	5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1,
}

var latencyBoundsNs = func() (ns [len(latencyBounds)]int64) {
	for i, b := range latencyBounds {
		ns[i] = int64(b * 1e9)
	}
	return
}()

// histogram is a lock-free fixed-bucket histogram for one loop.
type histogram struct {
	counts [len(latencyBounds) + 1]atomic.Uint64 // one per bound, then +Inf
	sumNs  atomic.Int64
}

func (h *histogram) observe(ns int64) {
	i := 0
	for i < len(latencyBoundsNs) && ns > latencyBoundsNs[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(ns)
}

var (
	descCommands = prometheus.NewDesc("wshub_hub_commands_total",
		"Client commands received, by op (invalid: malformed or unknown).", []string{"op"}, nil)
	descErrors = prometheus.NewDesc("wshub_hub_errors_total",
		"Error replies sent to clients, by code.", []string{"code"}, nil)
	descPublications = prometheus.NewDesc("wshub_hub_publications_total",
		"Publications the broker delivered to this instance.", nil, nil)
	descAPIPublishes = prometheus.NewDesc("wshub_hub_api_publishes_total",
		"Valid publishes received through the HTTP API.", nil, nil)
	descDeliveries = prometheus.NewDesc("wshub_hub_deliveries_total",
		"Message frames queued to subscribers.", nil, nil)
	descDropped = prometheus.NewDesc("wshub_hub_deliveries_dropped_total",
		"Message frames a connection refused (closing or slow consumer).", nil, nil)
	descDirects = prometheus.NewDesc("wshub_hub_direct_sends_total",
		"Addressed sends (POST /api/send) queued to a local connection.", nil, nil)
	descDirectMissed = prometheus.NewDesc("wshub_hub_direct_sends_missed_total",
		"Addressed sends for a connection that is not open here (closed meanwhile, or unknown).", nil, nil)
	descChannels = prometheus.NewDesc("wshub_hub_channels",
		"Channels with local subscribers or a broker operation in flight.", nil, nil)
	descSubscriptions = prometheus.NewDesc("wshub_hub_subscriptions",
		"Local subscriptions (connection, channel).", nil, nil)
	descBrokerSubs = prometheus.NewDesc("wshub_hub_broker_subscriptions",
		"Channels subscribed at the broker.", nil, nil)
	descRefused = prometheus.NewDesc("wshub_hub_upgrades_refused_total",
		"Upgrades refused by authentication (401) or the per-user connection cap (429), by reason.", []string{"reason"}, nil)
	descRefreshes = prometheus.NewDesc("wshub_hub_token_refreshes_total",
		"Tokens replaced by a refresh command.", nil, nil)
	descRateClosed = prometheus.NewDesc("wshub_hub_rate_limit_closes_total",
		"Connections closed with 1008 for exceeding the rate limits too often.", nil, nil)
	descResubscribed = prometheus.NewDesc("wshub_hub_resubscribed_total",
		"Channel subscriptions the broker restored after losing them (publications of the meantime may be missing).", nil, nil)
	descRepairs = prometheus.NewDesc("wshub_hub_history_repairs_total",
		"Reads of a history channel's stream to fill a gap in live delivery or after a restored subscription.", nil, nil)
	descRepaired = prometheus.NewDesc("wshub_hub_history_repaired_total",
		"Publications that gap repair delivered from the stream.", nil, nil)
	descLost = prometheus.NewDesc("wshub_hub_history_lost_total",
		"Offsets of history channels that live delivery skipped and the stream no longer held.", nil, nil)
	descAbandoned = prometheus.NewDesc("wshub_hub_history_repairs_abandoned_total",
		"Gap repairs given up because too much live traffic waited behind them.", nil, nil)
	descStreamDups = prometheus.NewDesc("wshub_hub_history_duplicates_total",
		"History publications dropped because this instance had handed them out already.", nil, nil)
	descReplayed = prometheus.NewDesc("wshub_hub_history_replayed_total",
		"Publications replayed to recovering subscribers.", nil, nil)
	descEvents = prometheus.NewDesc("wshub_hub_presence_events_total",
		"Joins and leaves of presence channels received, by outcome: sent to local subscribers, suppressed (a reconnect within the linger), dropped (malformed, or no join_leave here), failed (the broker did not take one this instance published).", []string{"outcome"}, nil)
	descHeldLeaves = prometheus.NewDesc("wshub_hub_presence_held_leaves",
		"Leaves held back by join_leave_linger.", nil, nil)
	descLatency = prometheus.NewDesc("wshub_hub_fanout_latency_seconds",
		"Time from Deliver to the loop handing the frame to its subscribers.", nil, nil)
)

// collector exports the hub's metrics.
type collector struct{ h *Hub }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCommands, descErrors, descPublications, descAPIPublishes,
		descDeliveries, descDropped, descDirects, descDirectMissed, descChannels, descSubscriptions, descBrokerSubs, descLatency,
		descRefused, descRefreshes, descRateClosed, descResubscribed,
		descRepairs, descRepaired, descLost, descAbandoned, descStreamDups, descReplayed, descEvents, descHeldLeaves} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	h := c.h
	var cmds [numOps]uint64
	var errs [numCodes]uint64
	var deliveries, dropped, directs, replayed uint64
	var buckets [len(latencyBounds) + 1]uint64
	var sumNs int64
	for _, l := range h.loops {
		s := &l.stats
		for i := range cmds {
			cmds[i] += s.commands[i].Load()
		}
		for i := range errs {
			errs[i] += s.errors[i].Load()
		}
		deliveries += s.deliveries.Load()
		dropped += s.dropped.Load()
		directs += s.directs.Load()
		replayed += s.replayed.Load()
		for i := range buckets {
			buckets[i] += s.latency.counts[i].Load()
		}
		sumNs += s.latency.sumNs.Load()
	}
	for i, n := range cmds {
		ch <- prometheus.MustNewConstMetric(descCommands, prometheus.CounterValue, float64(n), opNames[i])
	}
	for i, n := range errs {
		code := "other"
		if i < len(errorCodes) {
			code = strconv.Itoa(errorCodes[i])
		}
		ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(n), code)
	}
	var pubs uint64
	for i := range h.table.stripes {
		pubs += h.table.stripes[i].publications.Load()
	}
	ch <- prometheus.MustNewConstMetric(descPublications, prometheus.CounterValue, float64(pubs))
	ch <- prometheus.MustNewConstMetric(descAPIPublishes, prometheus.CounterValue, float64(h.stats.apiPublishes.Load()))
	ch <- prometheus.MustNewConstMetric(descDeliveries, prometheus.CounterValue, float64(deliveries))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(dropped))
	ch <- prometheus.MustNewConstMetric(descDirects, prometheus.CounterValue, float64(directs))
	ch <- prometheus.MustNewConstMetric(descDirectMissed, prometheus.CounterValue, float64(h.stats.directMissed.Load()))
	ch <- prometheus.MustNewConstMetric(descChannels, prometheus.GaugeValue, float64(h.table.channels.Load()))
	ch <- prometheus.MustNewConstMetric(descSubscriptions, prometheus.GaugeValue, float64(h.table.members.Load()))
	ch <- prometheus.MustNewConstMetric(descBrokerSubs, prometheus.GaugeValue, float64(h.table.brokerSubs.Load()))

	for i, r := range refusalReasons {
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(h.stats.refused[i].Load()), r)
	}
	ch <- prometheus.MustNewConstMetric(descRefreshes, prometheus.CounterValue, float64(h.stats.refreshes.Load()))
	ch <- prometheus.MustNewConstMetric(descRateClosed, prometheus.CounterValue, float64(h.stats.rateClosed.Load()))
	ch <- prometheus.MustNewConstMetric(descResubscribed, prometheus.CounterValue, float64(h.stats.resubscribed.Load()))
	for _, c := range []struct {
		d *prometheus.Desc
		v uint64
	}{{descRepairs, h.stats.repairs.Load()}, {descRepaired, h.stats.repaired.Load()}, {descLost, h.stats.lost.Load()},
		{descAbandoned, h.stats.repairsAbandoned.Load()}, {descStreamDups, h.stats.streamDuplicates.Load()}, {descReplayed, replayed}} {
		ch <- prometheus.MustNewConstMetric(c.d, prometheus.CounterValue, float64(c.v))
	}
	for _, e := range []struct {
		outcome string
		v       uint64
	}{{"sent", h.stats.eventsSent.Load()}, {"suppressed", h.stats.eventsSuppressed.Load()},
		{"dropped", h.stats.eventsDropped.Load()}, {"failed", h.stats.eventsFailed.Load()}} {
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(e.v), e.outcome)
	}
	ch <- prometheus.MustNewConstMetric(descHeldLeaves, prometheus.GaugeValue, float64(h.joinLeave.heldLeaves()))

	cum := make(map[float64]uint64, len(latencyBounds))
	var total uint64
	for i, b := range latencyBounds {
		total += buckets[i]
		cum[b] = total
	}
	total += buckets[len(latencyBounds)]
	ch <- prometheus.MustNewConstHistogram(descLatency, total, float64(sumNs)/1e9, cum)
}
