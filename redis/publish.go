package redis

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/wshub/wshub/hub"
)

// publisher issues PUBLISH (SPUBLISH on a cluster) from a few goroutines,
// each pipelining whatever queued up while its previous batch was in flight.
// A channel always maps to the same worker, so this instance's publications
// on one channel reach Redis in the order Publish was called.
type publisher struct {
	client  rueidis.Client // set once
	cluster bool           // SPUBLISH; set once
	timeout time.Duration  // Config.CommandTimeout; set once
	log     *slog.Logger   // set once
	stats   *stats         // the broker's counters

	queues []chan pubReq // one per worker; set once, closed by close
	mu     sync.RWMutex  // held for reading by submit's send, for writing by close
	closed bool          // guarded by mu
	wg     sync.WaitGroup
}

// pubReq is one queued publication.
type pubReq struct {
	channel, msg string
	done         func(error)
}

func newPublisher(client rueidis.Client, cluster bool, cfg *Config, log *slog.Logger, st *stats) *publisher {
	p := &publisher{
		client:  client,
		cluster: cluster,
		timeout: cfg.CommandTimeout,
		log:     log,
		stats:   st,
		queues:  make([]chan pubReq, cfg.PublishWorkers),
	}
	for i := range p.queues {
		p.queues[i] = make(chan pubReq, cfg.PublishQueue)
		p.wg.Add(1)
		go p.run(p.queues[i], cfg.PublishBatch)
	}
	return p
}

// submit queues one publication without blocking; done gets
// hub.ErrUnavailable at once when the queue is full or closed.
func (p *publisher) submit(channel, msg string, done func(error)) {
	q := p.queues[hub.ChannelHash(channel)%uint32(len(p.queues))]
	p.mu.RLock()
	ok := !p.closed
	if ok {
		select {
		case q <- pubReq{channel: channel, msg: msg, done: done}:
		default:
			ok = false
		}
	}
	p.mu.RUnlock()
	if !ok {
		p.stats.publishErrors.Add(1)
		done(hub.ErrUnavailable)
	}
}

func (p *publisher) run(q chan pubReq, most int) {
	defer p.wg.Done()
	batch := make([]pubReq, 0, most)
	cmds := make(rueidis.Commands, 0, most)
	for r := range q {
		batch = append(batch[:0], r)
	drain:
		for len(batch) < cap(batch) {
			select {
			case r, ok := <-q:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		cmds = cmds[:0]
		for _, r := range batch {
			if p.cluster {
				cmds = append(cmds, p.client.B().Spublish().Channel(r.channel).Message(r.msg).Build())
			} else {
				cmds = append(cmds, p.client.B().Publish().Channel(r.channel).Message(r.msg).Build())
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
		resps := p.client.DoMulti(ctx, cmds...)
		cancel()
		for i, r := range batch {
			err := resps[i].Error()
			if err != nil {
				p.stats.publishErrors.Add(1)
				p.log.Debug("publish failed", "channel", r.channel, "err", err)
				err = hub.ErrUnavailable
			}
			r.done(err)
			batch[i] = pubReq{}
		}
	}
}

// close stops accepting, lets the workers finish what is queued, and waits.
func (p *publisher) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for _, q := range p.queues {
		close(q)
	}
	p.mu.Unlock()
	p.wg.Wait()
}
