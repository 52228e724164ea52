package hub

import (
	"time"

	"github.com/wshub/wshub/hub/history"
	"github.com/wshub/wshub/hub/presence"
	"github.com/wshub/wshub/wsproto"
)

// Broker carries publications between gateway instances. The hub drives its
// subscriptions lazily: Subscribe is called when a channel gets its first local
// subscriber and Unsubscribe when it loses its last one, exactly once per
// instance whatever the number of loops. Every method must return quickly and
// is safe for concurrent use: callers are event loops that must never block.
type Broker interface {
	// Start begins delivering incoming publications to sink. Called once,
	// before any other method.
	Start(sink Sink) error
	// Publish hands data (a JSON value, byte for byte what the publisher sent)
	// to the broker for delivery to every subscriber of channel on every
	// instance. done is called exactly once, possibly synchronously, possibly
	// from another goroutine: nil once the broker accepted it, ErrUnavailable
	// when the broker is down. data may be reused by the caller after Publish
	// returns.
	Publish(channel string, data []byte, done func(error))
	// Subscribe starts receiving channel. done is called exactly once: nil as
	// soon as every later publication on channel will reach the sink,
	// ErrUnavailable when the broker is down (the hub then drops the
	// subscribers it was holding for it and calls Unsubscribe).
	Subscribe(channel string, done func(error))
	// Unsubscribe stops receiving channel.
	Unsubscribe(channel string)
	// Ready reports whether the broker can currently publish and deliver.
	Ready() bool
	// Close releases the broker's connections.
	Close() error
}

// Sink receives every publication the broker delivers to this instance.
// Calls for one channel never overlap (the broker serializes them): that is
// what gives every subscriber on every loop the same order. data is only valid
// during the call.
type Sink interface {
	Deliver(channel string, data []byte)
}

// Poster runs fn on one event loop's goroutine. Post is safe from any
// goroutine, never blocks, and batches: many posts may share one wake-up.
// Functions posted to one loop run in the order they were posted (the hub
// relies on it for per-channel message order and for a subscribe's ok to
// precede the messages that follow it). *eventloop.Loop implements it.
type Poster interface {
	Post(fn func())
}

// Conn is the hub's view of one WebSocket connection; *eventloop.Conn
// implements it. Apart from ID and Loop, methods may only be called on the
// goroutine of the loop that owns the connection.
type Conn interface {
	// ID is unique per process for the life of the process.
	ID() uint64
	// Loop is the index of the owning loop in the []Poster given to the hub.
	Loop() int
	// Send queues a shared frame (taking its own reference). It returns false
	// when the connection is closing or was just dropped as a slow consumer.
	// Send must not call back into the hub (OnClose ...) before it returns:
	// the hub calls it while iterating a channel's subscriber list.
	Send(f *wsproto.Frame) bool
	// Room is how many more frames Send accepts now without taking the
	// connection for a slow consumer; NotifyWritable asks for one
	// Hub.OnWritable call once what is queued has gone out. The hub paces
	// history replays with them.
	Room() int
	NotifyWritable()
	// Close sends a close frame after what is already queued, then closes.
	Close(code uint16, reason string)
	// SetExpiry makes the connection expire at t (the zero time: never); the
	// hub's OnExpire then closes it.
	SetExpiry(t time.Time)
	// Resume answers an upgrade OnUpgrade deferred with UpgradeLater by
	// calling decide, on the connection's loop and only if the connection
	// still waits: 0 accepts it, another code refuses it with that status.
	Resume(decide func() int)
	// Data and SetData hold the hub's per-connection state.
	Data() any
	SetData(v any)
}

// Historian is a Broker that keeps channel streams (history.Options). Both
// of wshub's brokers are. The hub calls PublishHistory instead of Publish for
// channels whose namespace keeps history; their publications then reach the
// sink through DeliverAt, with their offsets.
type Historian interface {
	// PublishHistory appends data to channel's stream, keeping opt.Size
	// entries for opt.TTL, assigns it the next offset and delivers it like
	// Publish, all in one atomic step. done is called exactly once (any
	// goroutine) with the position of this publication, or ErrUnavailable.
	PublishHistory(channel string, data []byte, opt history.Options, done func(history.Position, error))
	// ReadHistory calls done exactly once (any goroutine, possibly inside the
	// call) with up to limit entries of channel's stream after offset since,
	// oldest first, and the stream's position at the time of the read, or
	// ErrUnavailable. limit 0 reads the position only. A channel without a
	// stream reads as an empty stream.
	ReadHistory(channel string, since uint64, limit int, done func(history.Read, error))
}

// StreamSink is what a Historian delivers to besides Sink.Deliver. The same
// Sink value implements both; calls for one channel never overlap, DeliverAt
// and Deliver included.
type StreamSink interface {
	Sink
	// DeliverAt delivers a publication of channel's stream at pos. data is
	// only valid during the call.
	DeliverAt(channel string, pos history.Position, data []byte)
	// Resubscribed tells that channel's subscription was restored after the
	// broker lost it (a reconnect): publications of the meantime may be
	// missing, and the sink may read them from the stream.
	Resubscribed(channel string)
}

// PresenceStore keeps the members of presence channels across instances
// (redis: per channel, refreshed per instance in batches; presence.MemoryStore
// for one instance). Join and Leave are called from event loops: they
// return at once and may be applied later, in order per channel. Members
// and Stats call done exactly once, from any goroutine (possibly inside
// the call); a member of an instance that died is not answered once the
// instance's heartbeat fencing has passed.
type PresenceStore interface {
	Join(channel string, m presence.Member)
	Leave(channel string, conn string)
	Members(channel string, done func([]presence.Member, error))
	Stats(channel string, done func(presence.Stats, error))
}
