package redis

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/wshub/wshub/hub"
	"github.com/wshub/wshub/hub/history"
)

// publisher issues PUBLISH (SPUBLISH on a cluster), history publications and
// history reads from a few goroutines, each pipelining whatever queued up
// while its previous batch was in flight. A channel always maps to the same
// publish worker, so this instance's publications on one channel reach Redis
// in the order they were submitted. Reads have workers of their own: a burst
// of them (every channel of a reconnect) never waits in front of
// publications.
type publisher struct {
	client  rueidis.Client // set once
	cluster bool           // SPUBLISH; set once
	nonce   string         // ends the epochs this instance starts; set once
	timeout time.Duration  // Config.CommandTimeout; set once
	log     *slog.Logger   // set once
	stats   *stats         // the broker's counters

	queues []chan pubReq // PublishWorkers, then ReadWorkers; set once, closed by close
	pubs   int           // how many of queues are publish workers'; set once
	mu     sync.RWMutex  // held for reading by submit's send, for writing by close
	closed bool          // guarded by mu
	wg     sync.WaitGroup
}

// reqKind is what a pubReq asks for.
type reqKind uint8

const (
	reqPublish reqKind = iota // PUBLISH msg; answers done
	reqAppend                 // appendScript; answers donePos
	reqRead                   // readScript; answers doneRead
)

// pubReq is one queued command.
type pubReq struct {
	kind     reqKind
	channel  string
	msg      string          // reqPublish, reqAppend: the data
	opt      history.Options // reqAppend
	since    uint64          // reqRead
	limit    int             // reqRead
	done     func(error)
	donePos  func(history.Position, error)
	doneRead func(history.Read, error)
}

func newPublisher(client rueidis.Client, cluster bool, nonce string, cfg *Config, log *slog.Logger, st *stats) *publisher {
	p := &publisher{
		client:  client,
		cluster: cluster,
		nonce:   nonce,
		timeout: cfg.CommandTimeout,
		log:     log,
		stats:   st,
		queues:  make([]chan pubReq, cfg.PublishWorkers+cfg.ReadWorkers),
		pubs:    cfg.PublishWorkers,
	}
	for i := range p.queues {
		p.queues[i] = make(chan pubReq, cfg.PublishQueue)
		p.wg.Add(1)
		go p.run(p.queues[i], cfg.PublishBatch)
	}
	return p
}

// submit queues r without blocking; r is answered hub.ErrUnavailable at
// once when the queue is full or closed.
func (p *publisher) submit(r pubReq) {
	h := hub.ChannelHash(r.channel)
	q := p.queues[h%uint32(p.pubs)]
	if r.kind == reqRead {
		q = p.queues[p.pubs+int(h%uint32(len(p.queues)-p.pubs))]
	}
	p.mu.RLock()
	ok := !p.closed
	if ok {
		select {
		case q <- r:
		default:
			ok = false
		}
	}
	p.mu.RUnlock()
	if !ok {
		p.fail(r, hub.ErrUnavailable)
	}
}

func (p *publisher) run(q chan pubReq, most int) {
	defer p.wg.Done()
	batch := make([]pubReq, 0, most)
	cmds := make(rueidis.Commands, 0, most)
	var again []int
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
			cmds = append(cmds, p.command(r, false))
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
		resps := p.client.DoMulti(ctx, cmds...)
		// Scripts Redis did not know go again as EVAL, in order, in one
		// more round trip (once per node after each restart).
		again, cmds = again[:0], cmds[:0]
		for i, r := range batch {
			if r.kind != reqPublish && isNoScript(resps[i].Error()) {
				again = append(again, i)
				cmds = append(cmds, p.command(r, true))
			}
		}
		if len(again) > 0 {
			for j, res := range p.client.DoMulti(ctx, cmds...) {
				resps[again[j]] = res
			}
		}
		cancel()
		for i, r := range batch {
			p.answer(r, resps[i])
			batch[i] = pubReq{}
		}
	}
}

// command builds r's command; eval sends a script as EVAL instead of EVALSHA.
func (p *publisher) command(r pubReq, eval bool) rueidis.Completed {
	b := p.client.B()
	switch r.kind {
	case reqAppend:
		ttl := "0"
		if r.opt.TTL > 0 {
			ttl = strconv.FormatInt(max(r.opt.TTL.Milliseconds(), 1), 10)
		}
		pub := "PUBLISH"
		if p.cluster {
			pub = "SPUBLISH"
		}
		return appendScript.command(b, eval, r.channel, r.channel, r.msg, strconv.Itoa(r.opt.Size), ttl, p.nonce, pub)
	case reqRead:
		return readScript.command(b, eval, r.channel, strconv.FormatUint(r.since, 10), strconv.Itoa(r.limit))
	}
	if p.cluster {
		return b.Spublish().Channel(r.channel).Message(r.msg).Build()
	}
	return b.Publish().Channel(r.channel).Message(r.msg).Build()
}

// answer calls r's callback with Redis' answer.
func (p *publisher) answer(r pubReq, res rueidis.RedisResult) {
	err := res.Error()
	if err == nil {
		switch r.kind {
		case reqPublish:
			r.done(nil)
			return
		case reqAppend:
			var v []rueidis.RedisMessage
			var pos history.Position
			if v, err = res.ToArray(); err == nil {
				if pos, err = parsePosition(v); err == nil {
					r.donePos(pos, nil)
					return
				}
			}
		case reqRead:
			var rd history.Read
			if rd, err = parseRead(res); err == nil {
				r.doneRead(rd, nil)
				return
			}
		}
	}
	p.log.Debug("redis command failed", "kind", r.kind, "channel", r.channel, "err", err)
	p.fail(r, hub.ErrUnavailable)
}

// fail answers r with err, counted.
func (p *publisher) fail(r pubReq, err error) {
	switch r.kind {
	case reqPublish:
		p.stats.publishErrors.Add(1)
		r.done(err)
	case reqAppend:
		p.stats.publishErrors.Add(1)
		r.donePos(history.Position{}, err)
	case reqRead:
		p.stats.readErrors.Add(1)
		r.doneRead(history.Read{}, err)
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
