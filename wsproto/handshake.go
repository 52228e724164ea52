package wsproto

// HandshakeConfig configures ParseHandshake.
type HandshakeConfig struct {
	MaxRequestBytes int                      // cap on the whole request incl. headers; default 8192 when 0
	MaxHeaders      int                      // default 64 when 0
	Paths           []string                 // accepted paths; other paths -> 404
	CheckOrigin     func(origin string) bool // nil = allow all; false -> 403
}

// HandshakeStatus is the outcome of ParseHandshake.
type HandshakeStatus uint8

// Handshake outcomes.
const (
	HandshakeNeedMore HandshakeStatus = iota
	HandshakeDone
	HandshakeReject
)

// Handshake is the result of ParseHandshake.
type Handshake struct {
	Status        HandshakeStatus
	Consumed      int
	Code          int
	Reason        string
	Path          string
	Query         string
	Authorization string
	Subprotocol   bool
	Response      []byte
}

// ParseHandshake examines the bytes received so far (skeleton: always NeedMore).
func ParseHandshake(buf []byte, cfg *HandshakeConfig) Handshake {
	return Handshake{Status: HandshakeNeedMore}
}
