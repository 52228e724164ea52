package loadtest

import (
	"bytes"
	"errors"
	"hash/maphash"
	"io"
	"slices"

	"github.com/klauspost/compress/flate"
)

// deflateEnd is what a compressed message is inflated with after its
// payload: the sync-flush tail the sender stripped (RFC 7692 §7.2.2), then
// an empty final stored block, so that the inflater ends on io.EOF rather
// than asking for more.
var deflateEnd = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

var errInflatedTooLarge = errors.New("compressed server message inflates past the message limit")

// inflater inflates a poller's compressed messages, one at a time, each on
// its own (the gateway never takes context over): one flate reader serves
// every connection of the poller.
//
// The gateway compresses a publication once and sends every subscriber the
// same bytes, so the same compressed message reaches many of a poller's
// connections. Inflating it for each would make the load generator, not
// the gateway, the bottleneck of a compression run (a 1 KB message costs
// several µs to inflate, a delivery far less to send); so the recent
// compressed messages are kept with what they inflated to, and a delivery
// whose compressed bytes are byte for byte one of them gets that result.
// Every delivery is still checked: its bytes are compared in full, and what
// it is parsed from is what those very bytes inflate to.
type inflater struct {
	r     io.ReadCloser
	src   deflateSrc
	memo  []inflated       // a ring of recent messages
	index map[uint64]int32 // memo entries by the hash of their compressed bytes
	seed  maphash.Seed
	next  int    // the memo entry a miss replaces
	Hits  uint64 // deliveries served from the memo
	Fresh uint64 // deliveries inflated
}

// inflated is one remembered compressed message and what it inflates to.
type inflated struct {
	z, out []byte
	hash   uint64
	valid  bool
}

// memoFor is how many messages to remember for a poller: many times what
// can be in flight on average, since a subscriber may lag the others by
// far more than the average (a miss inflates again and pushes out the
// oldest entry, which a laggard may still need), within ~64 MiB of
// messages of size bytes and their compressed forms.
func memoFor(inFlight, size int) int {
	return min(max(64, 16*inFlight), max(64, (64<<20)/(2*max(size, 1))), 4096)
}

// maxKeptInflate caps the buffers a memo entry keeps between messages.
const maxKeptInflate = 1 << 20

// inflate returns the message compressed in payload; the result is valid
// until the inflater is next called and must not be changed.
func (z *inflater) inflate(payload []byte) ([]byte, error) {
	if z.memo == nil {
		z.setMemo(16)
	}
	h := maphash.Bytes(z.seed, payload)
	if i, ok := z.index[h]; ok {
		if e := &z.memo[i]; e.valid && bytes.Equal(e.z, payload) {
			z.Hits++
			return e.out, nil
		}
	}
	z.Fresh++
	i := z.next
	z.next = (z.next + 1) % len(z.memo)
	e := &z.memo[i]
	if e.valid && z.index[e.hash] == int32(i) {
		delete(z.index, e.hash)
	}
	e.valid = false // until this message inflated fine
	out, err := z.decode(payload, e.out[:0])
	if err != nil {
		return nil, err
	}
	if cap(out) > maxKeptInflate || len(payload) > maxKeptInflate {
		e.out, e.z = nil, nil // a one-off giant: not kept
		return out, nil
	}
	e.out, e.z, e.hash, e.valid = out, append(e.z[:0], payload...), h, true
	z.index[h] = int32(i)
	return out, nil
}

// setMemo sizes the memo (forgetting what it held).
func (z *inflater) setMemo(n int) {
	z.memo = make([]inflated, n)
	z.index = make(map[uint64]int32, n)
	z.seed = maphash.MakeSeed()
	z.next = 0
}

// decode inflates payload into out.
func (z *inflater) decode(payload, out []byte) ([]byte, error) {
	z.src = deflateSrc{p: payload}
	if z.r == nil {
		z.r = flate.NewReader(&z.src)
	} else if err := z.r.(flate.Resetter).Reset(&z.src, nil); err != nil {
		return nil, err
	}
	for {
		if len(out) > maxServerMessage {
			return nil, errInflatedTooLarge
		}
		if len(out) == cap(out) {
			out = slices.Grow(out, max(4<<10, len(out)))
		}
		// One byte past the limit tells a message of exactly the limit
		// from a longer one.
		n, err := z.r.Read(out[len(out):min(cap(out), maxServerMessage+1)])
		out = out[:len(out)+n]
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// deflateSrc reads a payload and then deflateEnd. It is an io.ByteReader,
// so the flate reader reads it directly instead of through a bufio.Reader
// of its own.
type deflateSrc struct {
	p []byte
	i int // position in p, then len(p)+position in deflateEnd
}

func (s *deflateSrc) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		c, err := s.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		b[n] = c
		n++
	}
	return n, nil
}

func (s *deflateSrc) ReadByte() (byte, error) {
	switch {
	case s.i < len(s.p):
		s.i++
		return s.p[s.i-1], nil
	case s.i < len(s.p)+len(deflateEnd):
		s.i++
		return deflateEnd[s.i-1-len(s.p)], nil
	}
	return 0, io.EOF
}
