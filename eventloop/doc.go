// Package eventloop runs wshub's WebSocket connections on gnet event loops.
//
// Each loop owns its connections outright: the handshake, frame decoding,
// the per-connection send ring, the timer wheel (handshake timeout, pings,
// pong timeout, close wait) and writing all happen on the loop's goroutine,
// so a connection needs no lock, no goroutine and no timer of its own. Other
// goroutines reach a loop only through Loop.Post, which batches: many posts
// share one wake-up, and the loop writes every connection that got frames
// once at the end of the batch, with one writev per connection.
//
// The package knows nothing of channels or brokers; a Handler (the hub)
// receives opened connections, text messages and closes.
package eventloop
