package loadtest

import "sync/atomic"

// Error kinds counted by the engine.
const (
	errConnect   = iota // TCP connect failed
	errHandshake        // malformed upgrade response, or the connection ended during the upgrade
	errRefused          // the gateway answered the upgrade with an HTTP status other than 101 (by status in poller.refused)
	errTimeout          // connect, upgrade or subscribe took longer than the deadline
	errClosed           // the gateway closed an established connection we did not close
	errProtocol         // bad frame or unreadable reply
	errReply            // an "error" reply
	errPublish          // HTTP publish failed
	errForeign          // a message for another channel or without our payload
	errOffset           // recover: a message or subscribe ok without an offset (no history on the channel), or a message before the ok
	numErrKinds
)

var errNames = [numErrKinds]string{"connect", "handshake", "refused", "timeout", "closed", "protocol", "reply", "publish", "foreign", "offset"}

// counters are one poller's live figures: written by that poller only,
// read by the progress display at any time.
type counters struct {
	open      atomic.Int64 // WebSocket connections open now
	ready     atomic.Int64 // connections subscribed (or publishers open), in total
	failed    atomic.Int64 // connections that never became ready
	received  atomic.Int64 // publications received
	published atomic.Int64 // publications sent
	acked     atomic.Int64 // publish acknowledgements (ok)
	closed    atomic.Int64 // connections that completed a close (churn)
	errs      [numErrKinds]atomic.Int64
}

// Counts are the connection and publication totals that a poller's
// counters, a progress snapshot and the progress display all carry; Add is
// the one place they are summed.
type Counts struct {
	Open      int64 `json:"open"`      // WebSocket connections open now
	Ready     int64 `json:"ready"`     // connections subscribed (or publishers open)
	Failed    int64 `json:"failed"`    // connections that never became ready
	Received  int64 `json:"received"`  // publications received
	Published int64 `json:"published"` // publications sent
}

// Add adds o into c.
func (c *Counts) Add(o Counts) {
	c.Open += o.Open
	c.Ready += o.Ready
	c.Failed += o.Failed
	c.Received += o.Received
	c.Published += o.Published
}

// liveCounts is a plain snapshot of counters.
type liveCounts struct {
	Counts
	Acked, Closed int64
	Errs          [numErrKinds]int64
}

func (c *counters) load() liveCounts {
	s := liveCounts{
		Counts: Counts{Open: c.open.Load(), Ready: c.ready.Load(), Failed: c.failed.Load(),
			Received: c.received.Load(), Published: c.published.Load()},
		Acked: c.acked.Load(), Closed: c.closed.Load(),
	}
	for i := range c.errs {
		s.Errs[i] = c.errs[i].Load()
	}
	return s
}

func (s *liveCounts) add(o liveCounts) {
	s.Counts.Add(o.Counts)
	s.Acked += o.Acked
	s.Closed += o.Closed
	for i := range s.Errs {
		s.Errs[i] += o.Errs[i]
	}
}

// errTotal is the number of errors of every kind.
func (s *liveCounts) errTotal() int64 {
	var n int64
	for _, v := range s.Errs {
		n += v
	}
	return n
}
