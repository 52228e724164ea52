package redis

import (
	"github.com/wshub/wshub/hub"
	"github.com/wshub/wshub/hub/history"
)

// PublishHistory appends data to channel's stream and publishes it, in one
// script run pipelined by the publish workers like Publish (see
// appendScript). done is called from a publisher goroutine with the
// publication's position, or hub.ErrUnavailable as for Publish. Options
// without history (Size 0) publish plainly and answer the zero Position.
func (b *Broker) PublishHistory(channel string, data []byte, opt history.Options, done func(history.Position, error)) {
	if !opt.On() {
		b.Publish(channel, data, func(err error) { done(history.Position{}, err) })
		return
	}
	r := pubReq{kind: reqAppend, channel: channel, msg: string(data), opt: opt, donePos: done}
	if !b.ready.Load() {
		b.pub.fail(r, hub.ErrUnavailable)
		return
	}
	b.pub.submit(r)
}

// ReadHistory reads the position of channel's stream and up to limit
// entries after since (see readScript), on a read worker: done is called
// from that goroutine, or at once with hub.ErrUnavailable when the read
// queue is full or the broker closed. Reads do not wait for Ready: they
// take the command connection, not the pub/sub one, and a sink told
// Resubscribed reads while the other channels of the connection are still
// being subscribed again (the broker is unready until they all are). A
// channel without a stream, or whose stream lost its meta or its entries,
// reads as offset 0 and epoch "": a since above 0 is then not recoverable,
// and nothing is created by reading.
func (b *Broker) ReadHistory(channel string, since uint64, limit int, done func(history.Read, error)) {
	b.pub.submit(pubReq{kind: reqRead, channel: channel, since: since, limit: max(limit, 0), doneRead: done})
}
