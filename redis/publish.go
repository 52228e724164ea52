package redis

import (
	"context"
	"sync"

	"github.com/redis/rueidis"

	"github.com/wshub/wshub/hub"
)

// publisher issues PUBLISH (SPUBLISH on a cluster) from a few goroutines,
// each pipelining whatever queued up while its previous batch was in flight.
// A channel always maps to the same worker, so this instance's publications
// on one channel reach Redis in the order Publish was called.
type publisher struct {
	b      *Broker
	queues []chan pubReq
	mu     sync.RWMutex // closed and sends vs. Close
	closed bool
	wg     sync.WaitGroup
}

type pubReq struct {
	channel, msg string
	done         func(error)
}

func newPublisher(b *Broker) *publisher {
	p := &publisher{b: b, queues: make([]chan pubReq, b.cfg.PublishWorkers)}
	for i := range p.queues {
		p.queues[i] = make(chan pubReq, b.cfg.PublishQueue)
		p.wg.Add(1)
		go p.run(p.queues[i])
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
		p.b.stats.publishErrors.Add(1)
		done(hub.ErrUnavailable)
	}
}

func (p *publisher) run(q chan pubReq) {
	defer p.wg.Done()
	b := p.b
	batch := make([]pubReq, 0, b.cfg.PublishBatch)
	cmds := make(rueidis.Commands, 0, b.cfg.PublishBatch)
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
			if b.cluster {
				cmds = append(cmds, b.client.B().Spublish().Channel(r.channel).Message(r.msg).Build())
			} else {
				cmds = append(cmds, b.client.B().Publish().Channel(r.channel).Message(r.msg).Build())
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.CommandTimeout)
		resps := b.client.DoMulti(ctx, cmds...)
		cancel()
		for i, r := range batch {
			err := resps[i].Error()
			if err != nil {
				b.stats.publishErrors.Add(1)
				b.log.Debug("publish failed", "channel", r.channel, "err", err)
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
