package hub

import (
	"context"
	"sync/atomic"
	"unicode/utf8"

	"github.com/wshub/wshub/hub/history"
)

// pendingPub carries one client publish through the broker and back to the
// publisher's loop. Records are recycled per loop, and their callbacks are
// cached func values, so a publish allocates nothing in steady state.
type pendingPub struct {
	l      *loopState
	cs     *connData
	id     uint64
	hasID  bool
	state  atomic.Int32 // pubCalling -> pubReturned | pubDone
	err    error
	at     history.Position              // a history channel's publication: its offset
	done   func(error)                   // cached r.complete, handed to Broker.Publish
	doneAt func(history.Position, error) // cached r.completeAt, for Historian.PublishHistory
	finish func()                        // cached r.answer, posted to the loop
}

const (
	pubCalling  int32 = iota // inside Broker.Publish, done not called
	pubReturned              // Publish returned first: done will post the answer
	pubDone                  // done ran first: the caller answers after Publish returns
)

func (l *loopState) getPub() *pendingPub {
	if n := len(l.freePub); n > 0 {
		r := l.freePub[n-1]
		l.freePub = l.freePub[:n-1]
		return r
	}
	r := &pendingPub{l: l}
	r.done = r.complete
	r.doneAt = r.completeAt
	r.finish = r.answer
	return r
}

// complete is the broker's done: any goroutine, maybe inside Publish.
func (r *pendingPub) complete(err error) {
	r.err = err
	if !r.state.CompareAndSwap(pubCalling, pubDone) {
		r.l.poster.Post(r.finish)
	}
}

// completeAt is complete for a history channel's publication.
func (r *pendingPub) completeAt(at history.Position, err error) {
	r.at = at
	r.complete(err)
}

// answer replies to the publisher on its loop, unless it has gone, and
// recycles the record.
func (r *pendingPub) answer() {
	l := r.l
	if !r.cs.closed() {
		if r.err != nil {
			l.replyError(r.cs.conn, r.hasID, r.id, errUnavailable)
		} else if r.hasID {
			l.reply(r.cs.conn, appendPublishOK(l.scratch[:0], r.id, r.at.Offset))
		}
	}
	r.cs, r.err, r.at = nil, nil, history.Position{}
	r.state.Store(pubCalling)
	l.freePub = append(l.freePub, r)
}

// publish handles a client publish on its loop.
func (h *Hub) publish(l *loopState, cs *connData, cmd *command) {
	if err := validChannel(cmd.channel); err != nil {
		l.replyError(cs.conn, cmd.hasID, cmd.id, err)
		return
	}
	if err := h.canPublish(cs, cmd.channel); err != nil {
		l.replyError(cs.conn, cmd.hasID, cmd.id, err)
		return
	}
	if len(cmd.data) > h.cfg.MaxPublish {
		l.replyError(cs.conn, cmd.hasID, cmd.id, h.errTooBig)
		return
	}
	r := l.getPub()
	r.cs, r.id, r.hasID = cs, cmd.id, cmd.hasID
	name := h.channelName(cmd.channel)
	if opt := h.historyOf(name); opt.On() {
		h.historian.PublishHistory(name, cmd.data, opt, r.doneAt)
	} else {
		h.broker.Publish(name, cmd.data, r.done)
	}
	if !r.state.CompareAndSwap(pubCalling, pubReturned) {
		r.answer() // done already ran
	}
}

// channelName returns name as a string, reusing the channel's own string
// when it is known (the common case), so publishing does not allocate.
func (h *Hub) channelName(name []byte) string {
	sh := h.table.stripeOf(name)
	sh.mu.RLock()
	ch := sh.m[string(name)]
	sh.mu.RUnlock()
	if ch != nil {
		return ch.name
	}
	return string(name)
}

var errDataNotJSON = &Error{400, "data must be one valid JSON value"}

// historyOf returns the history options of channel's namespace (none when
// the broker keeps no history).
func (h *Hub) historyOf(channel string) history.Options {
	if h.historian == nil {
		return history.Options{}
	}
	opt, _ := h.streamOptions(channel)
	return opt
}

// Publish publishes data (a JSON value) on channel for the HTTP API. It
// validates like a client publish and waits until the broker accepted it, ctx
// ends or Config.PublishTimeout passes; on a history channel it returns the
// publication's position (else the zero Position). Failures are *Error with
// the code the API answers (400, 413, 422, 503).
func (h *Hub) Publish(ctx context.Context, channel string, data []byte) (history.Position, error) {
	if err := validChannel(channel); err != nil {
		return history.Position{}, err
	}
	if len(data) > h.cfg.MaxPublish {
		return history.Position{}, h.errTooBig
	}
	if !validJSON(data) || !utf8.Valid(data) {
		return history.Position{}, errDataNotJSON
	}
	h.stats.apiPublishes.Add(1)
	ctx, cancel := context.WithTimeout(ctx, h.cfg.PublishTimeout)
	defer cancel()
	type result struct {
		at  history.Position
		err error
	}
	done := make(chan result, 1)
	if opt := h.historyOf(channel); opt.On() {
		h.historian.PublishHistory(channel, data, opt, func(at history.Position, err error) { done <- result{at, err} })
	} else {
		h.broker.Publish(channel, data, func(err error) { done <- result{err: err} })
	}
	select {
	case r := <-done:
		if r.err != nil {
			return history.Position{}, errUnavailable
		}
		return r.at, nil
	case <-ctx.Done():
		return history.Position{}, errTimeout
	}
}
