// Package history holds what wshub knows of channel streams: the offsets and
// epochs that let a client recover what it missed (PROTOCOL.md, "Ordering and
// delivery"), the in-memory store behind the memory broker, and the pure
// decision of whether a recovery is possible.
//
// A history channel's publications form its stream. Each gets an offset, the
// previous one + 1 (the first is 1), assigned by the broker atomically with
// the publication, so every instance sees the same offsets. A stream's epoch
// changes whenever its past is lost (the store was restarted, the stream
// expired or was evicted): offsets then start again at 1, and a client's
// `since` from the old epoch cannot be recovered.
package history
