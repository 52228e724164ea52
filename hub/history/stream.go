package history

import "time"

// MaxOffset is the largest offset: offsets stay below 2^53 so that
// JavaScript reads them exactly.
const MaxOffset = 1<<53 - 1

// Options is how a history channel's stream is kept: its namespace's
// history_size and history_ttl. The zero Options means no history.
type Options struct {
	Size int           // publications kept (the newest)
	TTL  time.Duration // the stream is dropped this long after its last publication
}

// On reports whether the channel keeps history.
func (o Options) On() bool { return o.Size > 0 }

// Position is a point in a stream: the offset of its latest publication (0
// for an empty stream) and the stream's epoch. A stream that does not exist
// (nothing published yet, or its past was lost) reads as offset 0 with no
// epoch (""): a client's epoch "" is taken as none given, and its first
// publication opens an epoch.
type Position struct {
	Offset uint64
	Epoch  string
}

// Entry is one publication kept in a stream.
type Entry struct {
	Offset uint64
	Data   []byte // the JSON value as published
}

// Read is the answer to a history read: up to the asked number of entries
// after the asked offset, oldest first, and the stream's position when it
// was read. Entries and their Data are only valid during the callback that
// receives them.
type Read struct {
	Pos     Position
	Entries []Entry
}
