package hub

import (
	"context"
	"sync/atomic"
	"unicode/utf8"
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
	done   func(error) // cached r.complete, handed to Broker.Publish
	finish func()      // cached r.answer, posted to the loop
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

// answer replies to the publisher on its loop, unless it has gone, and
// recycles the record.
func (r *pendingPub) answer() {
	l := r.l
	if !r.cs.closed {
		if r.err != nil {
			l.replyError(r.cs.conn, r.hasID, r.id, errUnavailable)
		} else if r.hasID {
			l.reply(r.cs.conn, appendOK(l.scratch[:0], r.id, false))
		}
	}
	r.cs, r.err = nil, nil
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
	h.broker.Publish(h.channelName(cmd.channel), cmd.data, r.done)
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

// Publish publishes data (a JSON value) on channel for the HTTP API. It
// validates like a client publish and waits until the broker accepted it, ctx
// ends or Config.PublishTimeout passes. Failures are *Error with the code
// the API answers (400, 413, 422, 503).
func (h *Hub) Publish(ctx context.Context, channel string, data []byte) error {
	if err := validChannel(channel); err != nil {
		return err
	}
	if len(data) > h.cfg.MaxPublish {
		return h.errTooBig
	}
	if !validJSON(data) || !utf8.Valid(data) {
		return errDataNotJSON
	}
	h.stats.apiPublishes.Add(1)
	ctx, cancel := context.WithTimeout(ctx, h.cfg.PublishTimeout)
	defer cancel()
	done := make(chan error, 1)
	h.broker.Publish(channel, data, func(err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			return errUnavailable
		}
		return nil
	case <-ctx.Done():
		return errTimeout
	}
}
