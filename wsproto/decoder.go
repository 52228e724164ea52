package wsproto

import "strconv"

// EventKind says what Decoder.Next produced.
type EventKind uint8

// Event kinds.
const (
	EventNone EventKind = iota
	EventText
	EventBinary
	EventPing
	EventPong
	EventClose
)

// Event is one decoded message or control frame.
type Event struct {
	Kind        EventKind
	Payload     []byte
	CloseCode   uint16
	CloseReason []byte
}

// CloseError is a protocol violation by the peer.
type CloseError struct {
	Code   uint16
	Reason string
}

func (e *CloseError) Error() string {
	return "websocket: close " + strconv.Itoa(int(e.Code)) + ": " + e.Reason
}

// Decoder decodes client frames.
type Decoder struct {
	max int
}

// Init prepares the decoder.
func (d *Decoder) Init(maxMessage int) { d.max = maxMessage }

// Next decodes at most one frame (skeleton: always needs more).
func (d *Decoder) Next(buf []byte) (ev Event, n int, err error) { return Event{}, 0, nil }

// Reset returns pooled buffers.
func (d *Decoder) Reset() {}
