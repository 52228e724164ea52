// Package loadtest is the engine of wsload, wshub's load generator.
//
// Connections are non-blocking sockets on a few epoll loops ("pollers",
// golang.org/x/sys/unix, level-triggered), never a goroutine each: a
// poller owns its connections outright, reads into one shared buffer and
// keeps a per-connection leftover only while a frame is incomplete, so an
// idle connection costs well under a kilobyte here. Client frames are
// masked with a fresh random key each; server frames are parsed
// incrementally; replies are scanned without allocating.
//
// Accounting is exact. Every channel has exactly one publisher, which
// stamps each publication's data with the channel's next sequence number
// and the send time: {"s":SEQ,"t":UNIX_NS,"p":"xx.."} padded to Config.Size.
// Each subscriber tracks its channel's sequence (duplicates are caught
// within a 64-deep window behind the highest seen, later stragglers count
// as reordered), and expected = Σ per channel subscribers × accepted
// publications, so lost = expected − distinct received. Latency is the
// arrival time of the read that brought a publication minus its "t", in an
// HDR-style log-linear histogram (exact below 128 µs, under 1.6 % error
// above) that merges across pollers and worker processes.
//
// Connections go round robin over Config.Targets (ws://host[:port]/path?query
// URLs, each upgrade asking for its own target's path and query, or
// host:port with Config.Path); with
// Config.PublishTargets the publishers connect there instead, so
// subscribers on some gateway instances and publishers on another measure
// delivery across instances (through the gateways' broker) with the same
// exact accounting: sequences are per channel, wherever they were sent.
//
// Each upgrade can present a token, in the query or in Authorization:
// Config.Token, or with Config.JWTSecret an HS256 token of its own (one sub
// per connection, numbered across worker processes), minted before the
// first dial, as many as the run is known to need, because minting on the
// poller would cost a tenth of a connection's work there. An upgrade the
// gateway refuses with an HTTP status (401 for a token, 429 for a limit) is
// counted by status, apart from broken handshakes.
//
// A run is Run(ctx, cfg, coord): setup (connect and subscribe), the
// "ready" barrier, the scenario's main phase, the "done" barrier. The
// Coordinator lets several processes (wsload --procs) start and end their
// main phases together and lets the caller sample the gateway's /proc at
// each barrier. Each process returns a Raw; Raw.Merge adds them and
// Finalize turns the sum into the Result of the --json file.
//
// At max rate a publisher keeps at most Config.Window publications in
// flight: not yet acknowledged, or not yet reached by its channel's live
// subscribers in this process on average (by highest sequence, so lost
// publications do not stall it), so a saturated gateway is measured at its
// throughput instead of being buried under an unbounded backlog.
package loadtest
