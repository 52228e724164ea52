package loadtest

// Connection states.
const (
	stConnecting uint8 = iota // TCP connect in progress
	stUpgrading               // upgrade request sent, waiting for the 101
	stOpen                    // WebSocket open
	stClosed
)

// Connection flags: what the connection is for, and what happened to it.
const (
	fSub       uint16 = 1 << iota // subscribes to its channel once open
	fPub                          // publisher
	fSlow                         // slow scenario: stops reading while publishing runs
	fChurn                        // closes as soon as it is subscribed
	fReconnect                    // storm: dials again when it loses its connection
	fReady                        // counted as ready
	fFailed                       // counted as failed
	fClosing                      // we sent a close frame
	fPaused                       // not reading (slow)
	fFolded                       // tracker added to the poller's aggregate
	fWantOut                      // EPOLLOUT registered
	fDeflate                      // permessage-deflate negotiated
	fZFrag                        // the message in frag is compressed
	fWatch                        // presence-churn: a watcher, whose joins and leaves are accounted
	fQuery                        // presence-churn: the querier
)

// conn is one client connection; only its poller touches it.
type conn struct {
	fd      int32
	st      uint8
	flags   uint16
	ch      int32 // channel index, -1 for none
	idx     int32 // global index in the scenario (subscriber or connection number)
	target  int32
	attempt int32 // storm: failed dials in a row
	t0      int64 // start of the current step: dial, subscribe or close (monotonic ns)
	since   int64 // storm: when this subscriber lost its previous connection (monotonic ns)
	in      []byte
	out     []byte
	frag    []byte
	accept  []byte // expected Sec-WebSocket-Accept while upgrading
	trk     tracker
	pub     *publisher
	rs      *awaySub // recover, presence-churn: the subscriber this connection serves
	user    int32    // presence-churn: 1 + the index of the user whose token it presents; 0: the next token
	lastT   int64    // publish time (unix ns) of the newest message received
	dropped int64    // when the gateway's close was first seen (monotonic ns)
}

func (c *conn) has(f uint16) bool { return c.flags&f != 0 }

// paces reports whether c counts in its channel's live subscribers, which
// a publisher at max rate paces on: not slow ones (they stop reading) nor
// recover ones (they come and go; recover publishes at a fixed rate).
func (c *conn) paces() bool { return c.has(fSub) && !c.has(fSlow) && c.rs == nil }

// dialReq asks a poller to open one connection.
type dialReq struct {
	idx     int32
	ch      int32
	flags   uint16
	target  int32
	attempt int32
	since   int64
	pub     *publisher
	rs      *awaySub
	user    int32
}

// chanAgg sums the trackers of one channel's subscribers on one poller.
type chanAgg struct {
	Subs      int64 `json:"subs"`
	Unique    int64 `json:"unique"`
	Dups      int64 `json:"dups"`
	Reordered int64 `json:"reordered"`
}

func (a *chanAgg) add(o chanAgg) {
	a.Subs += o.Subs
	a.Unique += o.Unique
	a.Dups += o.Dups
	a.Reordered += o.Reordered
}
