package loadtest

import (
	"errors"
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
// its own (the gateway never takes context over): one flate reader and one
// output buffer serve every connection of the poller.
type inflater struct {
	r   io.ReadCloser
	src deflateSrc
	out []byte
}

// maxKeptInflate caps the output buffer kept between messages.
const maxKeptInflate = 1 << 20

// inflate returns the message compressed in payload; the result is valid
// until the next call.
func (z *inflater) inflate(payload []byte) ([]byte, error) {
	z.src = deflateSrc{p: payload}
	if z.r == nil {
		z.r = flate.NewReader(&z.src)
	} else if err := z.r.(flate.Resetter).Reset(&z.src, nil); err != nil {
		return nil, err
	}
	out := z.out[:0]
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
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if cap(out) <= maxKeptInflate {
		z.out = out
	} else {
		z.out = nil
	}
	return out, nil
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
