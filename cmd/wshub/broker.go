package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wshub/wshub/hub"
	"github.com/wshub/wshub/redis"
)

// errStopped: the process was told to stop before its broker was up.
var errStopped = errors.New("stopped while waiting for Redis")

// openBroker returns the configured broker: the in-process one, or Redis
// (then rb is the same broker, for the registry and addressed sends).
//
// A Redis that cannot be reached is retried with backoff until it answers or
// ctx ends, while the admin API answers /readyz 503: an orchestrator may start
// the gateway before Redis, and a Redis outage must not turn into a crash
// loop of every gateway. Any other error (configuration) is returned at once.
func openBroker(ctx context.Context, cfg *config, log *slog.Logger, reg prometheus.Registerer) (b hub.Broker, rb *redis.Broker, err error) {
	if !cfg.redisEnabled() {
		return hub.NewMemoryBrokerWith(hub.MemoryConfig{HistoryMaxBytes: int64(cfg.HistoryMaxBytes)}), nil, nil
	}
	rcfg := redis.Config{
		URL:           cfg.Redis,
		ClusterAddrs:  cfg.clusterAddrs(),
		InstanceID:    cfg.InstanceID,
		Logger:        log,
		Metrics:       reg,
		ProbeInterval: cfg.ProbeInterval,
		ProbeTimeout:  cfg.ProbeTimeout,
	}
	target := cfg.Redis
	if target == "" {
		target = strings.Join(cfg.RedisCluster, ",")
	}
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		rb, err = redis.New(rcfg)
		if err == nil {
			if attempt > 1 {
				log.Info("redis reachable", "redis", target, "attempts", attempt)
			}
			return rb, rb, nil
		}
		if !errors.Is(err, redis.ErrUnreachable) {
			return nil, nil, err
		}
		log.Warn("redis unreachable; not accepting clients until it answers (/readyz 503)",
			"redis", target, "attempt", attempt, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return nil, nil, errStopped
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}
