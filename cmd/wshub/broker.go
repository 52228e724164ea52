package main

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wshub/wshub/hub"
)

// newBroker picks the broker from the configuration: in-process unless Redis
// is configured.
func newBroker(cfg *config, log *slog.Logger, reg prometheus.Registerer) (hub.Broker, error) {
	return hub.NewMemoryBroker(), nil
}
