package loadtest

import (
	"math/bits"
	"strconv"
	"time"
)

// publisher sends publications on the channels it owns, round robin, each
// with the channel's next sequence number and the wall-clock send time.
// WebSocket publishers run on a poller; HTTP ones on their own goroutine.
type publisher struct {
	c      *conn   // open WebSocket connection, nil until ready (WebSocket only)
	chans  []int32 // owned channels
	next   int
	perSec float64 // this publisher's rate, 0 = as fast as the window allows
	budget int64   // publications to send, 0 = until publishing stops
	window int64
	sent   int64
	acked  int64 // ok or error replies received
	start  int64 // monotonic ns of the first pump (since rearm)
	sent0  int64 // sent at the last rearm: the rate paces what was sent since
	ids    []int32
	jbuf   []byte // scratch for one command's JSON
}

func newPublisher(chans []int32, perSec float64, budget int64, window int) *publisher {
	ring := 1 << bits.Len(uint(window))
	return &publisher{chans: chans, perSec: perSec, budget: budget, window: int64(window), ids: make([]int32, ring)}
}

// done reports whether the publisher has sent its whole budget.
func (pb *publisher) done() bool { return pb.budget > 0 && pb.sent >= pb.budget }

// rearm gives a publisher that is not pumping perChannel more
// publications on each of its channels, paced from the next pump.
func (pb *publisher) rearm(perChannel int64) {
	pb.budget = pb.sent + perChannel*int64(len(pb.chans))
	pb.start, pb.sent0 = 0, pb.sent
}

// due is how many publications the rate and budget allow now.
func (pb *publisher) due(now int64) int64 {
	if pb.start == 0 {
		pb.start = now
	}
	n := int64(1 << 30)
	if pb.perSec > 0 {
		n = int64(float64(now-pb.start)*pb.perSec/1e9) + 1 - (pb.sent - pb.sent0)
	}
	if pb.budget > 0 {
		n = min(n, pb.budget-pb.sent)
	}
	return n
}

// nextChannel returns the channel of the next publication, or -1 when the
// window is full: too many unacknowledged publishes, or the channel's
// channel's subscribers too far behind on average.
func (pb *publisher) nextChannel(e *engine) int32 {
	if pb.sent-pb.acked >= pb.window {
		return -1
	}
	ch := pb.chans[pb.next]
	if e.behind(ch, pb.window) {
		return -1
	}
	pb.next++
	if pb.next == len(pb.chans) {
		pb.next = 0
	}
	return ch
}

// pump sends what is due over the WebSocket connection, batched into one
// write. A connection whose socket is backed up waits.
func (pb *publisher) pump(p *poller, now int64) {
	c := pb.c
	if c == nil || c.st != stOpen || len(c.out) > 0 || pb.done() {
		return
	}
	due := pb.due(now)
	if due <= 0 {
		return
	}
	e := p.e
	wall := time.Now().UnixNano()
	buf := p.wbuf[:0]
	var n int64
	for ; n < due && len(buf) < 48<<10; n++ {
		ch := pb.nextChannel(e)
		if ch < 0 {
			break
		}
		e.seq[ch]++
		pb.sent++
		pb.ids[pb.sent&int64(len(pb.ids)-1)] = ch
		pb.jbuf = appendPublishCmd(pb.jbuf[:0], e.chanNames[ch], e.seq[ch], wall, e.cfg.Size, e.pad, pb.sent)
		buf = appendClientFrame(buf, opText, pb.jbuf, p.rng.Uint32())
	}
	p.wbuf = buf
	if n > 0 {
		p.ctr.published.Add(n)
		p.write(c, buf)
	}
}

// ack settles the publish with this id.
func (pb *publisher) ack(p *poller, id int64, ok bool) {
	if id > pb.sent || id <= pb.sent-int64(len(pb.ids)) {
		p.ctr.errs[errProtocol].Add(1) // an id we never sent or long settled
		return
	}
	pb.acked++
	if ok {
		p.ctr.acked.Add(1)
	} else {
		p.e.rejected[pb.ids[id&int64(len(pb.ids)-1)]].Add(1)
	}
	if pb.perSec == 0 && p.e.publishing.Load() {
		pb.pump(p, p.e.now()) // refill the window at once
	}
}

// appendPublishCmd appends {"op":"publish","channel":..,"data":..,"id":..}.
func appendPublishCmd(dst, channel []byte, seq, ts int64, size int, pad []byte, id int64) []byte {
	dst = append(dst, `{"op":"publish","channel":"`...)
	dst = append(dst, channel...)
	dst = append(dst, `","data":`...)
	dst = appendPayload(dst, seq, ts, size, pad)
	dst = append(dst, `,"id":`...)
	dst = strconv.AppendInt(dst, id, 10)
	return append(dst, '}')
}

// appendHTTPPublish appends the body of POST /api/publish.
func appendHTTPPublish(dst, channel []byte, seq, ts int64, size int, pad []byte) []byte {
	dst = append(dst, `{"channel":"`...)
	dst = append(dst, channel...)
	dst = append(dst, `","data":`...)
	dst = appendPayload(dst, seq, ts, size, pad)
	return append(dst, '}')
}
