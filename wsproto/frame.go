package wsproto

import (
	"sync/atomic"

	"github.com/gobwas/ws"
)

// Frame is an encoded server frame, refcounted.
type Frame struct {
	b    []byte
	refs atomic.Int32
}

// NewFrame copies payload into a new frame.
func NewFrame(op ws.OpCode, payload []byte) *Frame {
	return &Frame{b: AppendFrame(nil, op, payload)}
}

// BuildFrame returns a frame and its payload slice to fill.
func BuildFrame(op ws.OpCode, payloadLen int) (*Frame, []byte) {
	f := &Frame{b: AppendFrame(nil, op, make([]byte, payloadLen))}
	return f, f.b[len(f.b)-payloadLen:]
}

// NewCloseFrame builds a close frame.
func NewCloseFrame(code uint16, reason string) *Frame {
	p := append([]byte{byte(code >> 8), byte(code)}, reason...)
	if len(p) > 125 {
		p = p[:125]
	}
	return NewFrame(ws.OpClose, p)
}

// Bytes returns the encoded frame.
func (f *Frame) Bytes() []byte { return f.b }

// Retain adds a holder.
func (f *Frame) Retain() { f.refs.Add(1) }

// Release drops a holder.
func (f *Frame) Release() { f.refs.Add(-1) }

// AppendFrame appends an unmasked final frame to dst.
func AppendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	n := len(payload)
	dst = append(dst, 0x80|byte(op))
	switch {
	case n < 126:
		dst = append(dst, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, payload...)
}
