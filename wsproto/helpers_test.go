package wsproto

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
)

// testMask is the mask key of test frames: non-zero in every byte so that a
// decoder that forgot to unmask would see garbage.
var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// frameSpec describes a client frame for the tests, including illegal ones.
type frameSpec struct {
	fin      bool
	rsv      byte // RSV bits already in place (0x40, 0x20, 0x10)
	op       byte
	payload  []byte
	unmasked bool
	lenForm  int // force the length encoding: 0 minimal, 126 or 127
}

// encode builds the wire bytes of the frame.
func (f frameSpec) encode() []byte {
	b0 := f.rsv | f.op
	if f.fin {
		b0 |= 0x80
	}
	var maskBit byte
	if !f.unmasked {
		maskBit = 0x80
	}
	n := len(f.payload)
	out := []byte{b0}
	switch {
	case f.lenForm == 127 || f.lenForm == 0 && n > 0xFFFF:
		out = append(out, maskBit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	case f.lenForm == 126 || f.lenForm == 0 && n > 125:
		out = append(out, maskBit|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, maskBit|byte(n))
	}
	if f.unmasked {
		return append(out, f.payload...)
	}
	out = append(out, testMask[:]...)
	for i, c := range f.payload {
		out = append(out, c^testMask[i%4])
	}
	return out
}

func text(s string) frameSpec { return frameSpec{fin: true, op: 1, payload: []byte(s)} }
func bin(s string) frameSpec  { return frameSpec{fin: true, op: 2, payload: []byte(s)} }
func ping(s string) frameSpec { return frameSpec{fin: true, op: 9, payload: []byte(s)} }
func pong(s string) frameSpec { return frameSpec{fin: true, op: 10, payload: []byte(s)} }
func frag(op byte, s string) frameSpec {
	return frameSpec{op: op, payload: []byte(s)}
}
func cont(s string, fin bool) frameSpec {
	return frameSpec{fin: fin, op: 0, payload: []byte(s)}
}
func closeF(code uint16, reason string) frameSpec {
	return frameSpec{fin: true, op: 8, payload: append(binary.BigEndian.AppendUint16(nil, code), reason...)}
}
func closeRaw(p string) frameSpec { return frameSpec{fin: true, op: 8, payload: []byte(p)} }

func wire(frames ...frameSpec) []byte {
	var out []byte
	for _, f := range frames {
		out = append(out, f.encode()...)
	}
	return out
}

// rec is one recorded decoder event, with its payload copied.
type rec struct {
	Kind       EventKind
	Payload    string
	Code       uint16
	Reason     string
	Compressed bool
}

func (r rec) String() string {
	p := r.Payload
	if len(p) > 20 {
		p = fmt.Sprintf("%.20q...(%d)", p, len(p))
	} else {
		p = fmt.Sprintf("%q", p)
	}
	return fmt.Sprintf("{%d %s %d %q %v}", r.Kind, p, r.Code, r.Reason, r.Compressed)
}

// outcome is everything a decoding run produced.
type outcome struct {
	events   []rec
	errCode  uint16 // 0 when no error
	leftover int    // bytes never consumed
}

// chunker yields the size of the next read, given how many bytes remain.
type chunker func(remaining int) int

func whole(remaining int) int { return remaining }
func byteByByte(int) int      { return 1 }
func randomChunks(seed uint64) chunker {
	r := rand.New(rand.NewPCG(seed, 7))
	return func(remaining int) int { return 1 + r.IntN(min(remaining, 64)) }
}

// chunkers returns the ways every input is fed to the parsers.
func chunkers() map[string]chunker {
	m := map[string]chunker{"whole": whole, "bytewise": byteByByte}
	for s := uint64(1); s <= 4; s++ {
		m[fmt.Sprintf("random%d", s)] = randomChunks(s)
	}
	return m
}

// heapAllocated is the bytes allocated on the heap so far. It stops the
// world, to count exactly: decode calls it around inflating calls only.
func heapAllocated() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// completesCompressed reports whether buf starts with a whole frame that
// ends a compressed message, so that Next would inflate it.
func completesCompressed(d *Decoder, buf []byte) bool {
	size, err := d.FrameSize(buf)
	if err != nil || size == 0 || len(buf) < size || buf[0]&0x80 == 0 {
		return false
	}
	switch buf[0] & 0x0f {
	case 0:
		return d.compressed
	case 1, 2:
		return buf[0]&0x40 != 0
	}
	return false
}

// decode feeds input to a fresh decoder the way a socket would: read a chunk,
// append it to the buffer, call Next until it needs more, drop consumed bytes.
// It checks the decoder's invariants on the way and reports violations via
// fail (so fuzz targets and tests share it).
func decode(input []byte, maxMessage int, compress bool, next chunker, fail func(string, ...any)) outcome {
	var d Decoder
	d.Init(maxMessage)
	d.AllowCompressed(compress)
	defer d.Reset()
	in := bytes.Clone(input) // Next unmasks in place
	var buf []byte
	var out outcome
	for len(in) > 0 {
		k := next(len(in))
		buf, in = append(buf, in[:k]...), in[k:]
		for {
			inflates := completesCompressed(&d, buf)
			var allocated uint64
			if inflates {
				allocated = heapAllocated()
			}
			ev, n, err := d.Next(buf)
			// Bounded memory, whatever the ratio of a compressed message:
			// the call may grow the reassembly buffer and inflate, each by
			// doubling up to the limit; the rest is an inflater (about 42
			// KiB, when the pool has none) and the pools' bookkeeping.
			if inflates {
				if grown := heapAllocated() - allocated; grown > uint64(4*d.max+128<<10) {
					fail("inflating allocated %d bytes with a %d-byte limit", grown, d.max)
				}
			}
			if err != nil {
				ce, ok := err.(*CloseError)
				if !ok {
					fail("error %T is not a *CloseError", err)
					return out
				}
				switch ce.Code {
				case CloseProtocolError, CloseInvalidPayload, CloseTooBig:
				default:
					fail("illegal close code %d", ce.Code)
				}
				out.errCode = ce.Code
				return out
			}
			if n < 0 || n > len(buf) {
				fail("n=%d outside [0,%d]", n, len(buf))
				return out
			}
			if n == 0 {
				if ev.Kind != EventNone {
					fail("event %d without consuming bytes", ev.Kind)
				}
				if d.op == 0 && d.msg != nil {
					fail("idle decoder holds a %d-byte buffer", cap(d.msg.B))
				}
				break
			}
			limit := int(d.max) // messages; control frames have RFC 6455's own 125
			if ev.Kind >= EventPing {
				limit = 125
			}
			if len(ev.Payload) > limit {
				fail("payload of %d bytes over the %d limit", len(ev.Payload), limit)
			}
			out.events = append(out.events, rec{ev.Kind, string(ev.Payload), ev.CloseCode, string(ev.CloseReason), ev.Compressed})
			buf = append(buf[:0], buf[n:]...)
		}
	}
	out.leftover = len(buf)
	return out
}
