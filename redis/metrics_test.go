package redis

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wshub/wshub/redis/redistest"
)

func TestMetricsRegistered(t *testing.T) {
	srv := redistest.Start(t)
	reg := prometheus.NewRegistry()
	b, _ := startBroker(t, Config{URL: srv.URL(), Metrics: reg})
	must(t, subscribe(t, b, "m"))
	mfs, err := reg.Gather()
	must(t, err)
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			got[mf.GetName()] = c.GetValue()
		} else {
			got[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	for _, name := range []string{"wshub_redis_reconnects_total", "wshub_redis_resubscribed_channels_total",
		"wshub_redis_probe_failures_total", "wshub_redis_dropped_messages_total", "wshub_redis_publish_errors_total", "wshub_redis_history_read_errors_total",
		"wshub_redis_registry_commands_total", "wshub_redis_presence_commands_total"} {
		if _, ok := got[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	if got["wshub_redis_ready"] != 1 || got["wshub_redis_subscribed_channels"] != 2 || got["wshub_redis_subscribe_commands_total"] < 1 {
		t.Errorf("ready/subscribed/subscribe commands: %v", got)
	}
	if _, err := New(Config{URL: srv.URL(), Metrics: reg}); err == nil {
		t.Error("second broker registering the same metrics accepted")
	}
}
