package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/redis/rueidis"
)

// router reads a cluster's slot map: every ClusterRefresh, and soon after a
// poke (a refused SSUBSCRIBE, a subscription Redis dropped, a lost
// connection). It only does the I/O; what a new map means for the channels is
// the broker's slotPlan's decision.
type router struct {
	client   rueidis.Client // the broker's cluster client; set once
	cfg      Config         // the broker's; set once
	log      *slog.Logger   // set once
	seedHost string         // stands in for a CLUSTER SLOTS entry without a host; set once

	wake chan struct{} // cap 1: sent by poke, read by run
	stop chan struct{} // closed by halt (once, from Broker.Close); read by run
}

func newRouter(client rueidis.Client, cfg Config, log *slog.Logger) *router {
	host, _, _ := net.SplitHostPort(cfg.ClusterAddrs[0])
	return &router{
		client:   client,
		cfg:      cfg,
		log:      log,
		seedHost: host,
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
}

// poke asks for a slot map refresh soon.
func (r *router) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *router) halt() { close(r.stop) }

// run hands every map it reads, or the error, to apply until halt. When apply
// asks to retry (the read failed, or some channel's slot still has no
// master) it reads again after a short delay, not at once: a cluster with
// uncovered slots must not be asked in a loop.
func (r *router) run(apply func(m *slotMap, err error) (retry bool)) {
	t := time.NewTicker(r.cfg.ClusterRefresh)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		case <-r.wake:
		}
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.CommandTimeout)
		m, err := r.fetch(ctx)
		cancel()
		if err != nil {
			r.log.Warn("cluster slot refresh failed", "err", err)
		}
		if apply(m, err) {
			select {
			case <-r.stop:
				return
			case <-time.After(r.cfg.MinBackoff * 4):
				r.poke()
			}
		}
	}
}

// fetch reads CLUSTER SLOTS from the known nodes in random order until one
// answers: a dead master must not hide the map its peers already have.
func (r *router) fetch(ctx context.Context) (*slotMap, error) {
	var errs error
	for addr, n := range r.client.Nodes() {
		try, cancel := context.WithTimeout(ctx, r.cfg.DialTimeout)
		m, err := parseSlots(n.Do(try, n.B().ClusterSlots().Build()), r.seedHost)
		cancel()
		if err == nil {
			return m, nil
		}
		errs = errors.Join(errs, fmt.Errorf("%s: %w", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	if errs == nil {
		errs = errors.New("redis: no cluster node known")
	}
	return nil, errs
}
