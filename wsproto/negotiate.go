package wsproto

// permessage-deflate negotiation (RFC 7692 §7) on the server side.
//
// The gateway keeps no compression state per connection: every message is
// compressed and inflated on its own. So an accepted offer is always
// answered with server_no_context_takeover (we take none, RFC 7692
// §7.1.1.1 lets a server say so unasked) and client_no_context_takeover
// (§7.1.1.2: a server may always ask it, and the client then compresses
// each message on its own, so one pooled inflater serves every message).
//
// Window sizes (§7.1.2). client_max_window_bits limits the client's
// window; we inflate with the full 32 KiB window, which reads any smaller
// one, so we accept the parameter with or without a value and never answer
// it (§7.1.2.2 lets the server leave it out). server_max_window_bits limits
// the window of what we send. Our compressor (klauspost/compress/flate)
// always uses 32 KiB, and a publication is compressed once for every
// subscriber, so we cannot compress for a client that asked for less. Such
// an offer is still supported (§7: a server declines only what it does not
// support): we echo the value, as §7.1.2.1 requires of an acceptance, and
// send that client only uncompressed messages, which RFC 7692 §6 allows on
// any message (RSV1 clear). Handshake.Compressed tells the two apart.

// Parameters of a permessage-deflate offer (RFC 7692 §7.1), one bit each so
// that a repeated one is seen.
const (
	paramServerNoContext uint8 = 1 << iota
	paramClientNoContext
	paramServerWindow
	paramClientWindow
)

// maxWindowBits is the LZ77 window of the shared compressor: 32 KiB.
const maxWindowBits = 15

// extensions is what the Sec-WebSocket-Extensions lines of a request said.
// Several lines are one list in their order (RFC 6455 §9.1), so each line
// is folded in as it comes, and the first acceptable offer wins (RFC 6455
// §9.1: the client lists its offers in order of preference).
type extensions struct {
	bad        bool  // a line broke the grammar of RFC 6455 §9.1
	deflate    bool  // an acceptable permessage-deflate offer was found
	serverBits uint8 // that offer's server_max_window_bits, 0 if it had none
}

// add folds in one Sec-WebSocket-Extensions field value.
//
// Grammar (RFC 6455 §9.1, with RFC 2616's implied linear whitespace around
// the separators, which §9.1 says it uses):
//
//	extension-list  = 1#extension
//	extension       = extension-token *( ";" extension-param )
//	extension-param = token [ "=" (token | quoted-string) ]
//
// A quoted value must be a token once unescaped. Empty list elements are
// skipped (RFC 9110 §5.6.1.2). Any other byte out of place makes the line
// bad: the whole request is then refused (see headers.check).
func (e *extensions) add(v []byte) {
	p := extParser{s: v}
	for {
		p.skipOWS()
		if p.end() {
			return
		}
		if p.at(',') { // empty element
			p.i++
			continue
		}
		name, ok := p.token()
		if !ok {
			e.bad = true
			return
		}
		isDeflate := string(name) == "permessage-deflate" // registered name, exact (as browsers send it)
		var offer deflateOffer
		for {
			p.skipOWS()
			if p.end() || p.at(',') {
				break
			}
			pname, val, hasVal, ok := p.param()
			if !ok {
				e.bad = true
				return
			}
			if isDeflate {
				offer.param(pname, val, hasVal)
			}
		}
		if isDeflate && !e.deflate && !offer.declined {
			e.deflate, e.serverBits = true, offer.serverBits
		}
		p.i++ // the comma, or past the end
	}
}

// deflateOffer collects the parameters of one permessage-deflate offer.
type deflateOffer struct {
	seen       uint8 // param* bits
	serverBits uint8 // server_max_window_bits, 0 when absent
	declined   bool
}

// param records one parameter; val is unescaped already when it was quoted.
// RFC 7692 §7 makes the server decline an offer with a parameter not defined
// for an offer, a parameter with an invalid value, or a parameter twice.
// Names are compared exactly, as RFC 7692 defines them.
func (o *deflateOffer) param(name, val []byte, hasVal bool) {
	var bit uint8
	valid := true
	switch string(name) {
	case "server_no_context_takeover":
		bit, valid = paramServerNoContext, !hasVal
	case "client_no_context_takeover":
		bit, valid = paramClientNoContext, !hasVal
	case "server_max_window_bits": // §7.1.2.1: a value is required
		bit = paramServerWindow
		o.serverBits, valid = windowBits(val)
		valid = valid && hasVal
	case "client_max_window_bits": // §7.1.2.2: the value is optional
		bit = paramClientWindow
		if hasVal {
			_, valid = windowBits(val)
		}
	default:
		valid = false
	}
	if !valid || o.seen&bit != 0 {
		o.declined = true
	}
	o.seen |= bit
}

// windowBits parses a window size parameter: a decimal integer from 8 to 15
// without leading zeroes (RFC 7692 §7.1.2.1 and §7.1.2.2).
func windowBits(v []byte) (uint8, bool) {
	switch {
	case len(v) == 1 && (v[0] == '8' || v[0] == '9'):
		return v[0] - '0', true
	case len(v) == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5':
		return 10 + v[1] - '0', true
	}
	return 0, false
}

// extParser walks one Sec-WebSocket-Extensions value. Header values were
// already checked for control characters (headers.add).
type extParser struct {
	s   []byte
	i   int
	buf [8]byte // an unescaped quoted value; longer ones are never valid parameters
}

func (p *extParser) end() bool      { return p.i >= len(p.s) }
func (p *extParser) at(c byte) bool { return p.i < len(p.s) && p.s[p.i] == c }

// skipOWS skips optional whitespace (SP, HTAB).
func (p *extParser) skipOWS() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// param reads "; name" or "; name=value" (OWS allowed around both).
func (p *extParser) param() (name, val []byte, hasVal, ok bool) {
	if !p.at(';') {
		return nil, nil, false, false
	}
	p.i++
	p.skipOWS()
	if name, ok = p.token(); !ok {
		return nil, nil, false, false
	}
	p.skipOWS()
	if !p.at('=') {
		return name, nil, false, true
	}
	p.i++
	p.skipOWS()
	val, ok = p.value()
	return name, val, true, ok
}

// token reads a token (RFC 9110 §5.6.2).
func (p *extParser) token() ([]byte, bool) {
	start := p.i
	for p.i < len(p.s) && tokenChars[p.s[p.i]] {
		p.i++
	}
	return p.s[start:p.i], p.i > start
}

// value reads a parameter value: a token, or a quoted-string whose content,
// once its quoted-pairs are unescaped, is a token (RFC 6455 §9.1). A quoted
// value is returned unescaped, in p.buf when short enough (a longer one is
// only checked: no permessage-deflate parameter value is that long, so its
// content does not matter).
func (p *extParser) value() ([]byte, bool) {
	if !p.at('"') {
		return p.token()
	}
	p.i++
	out := p.buf[:0]
	n := 0
	for {
		if p.end() {
			return nil, false // unterminated
		}
		c := p.s[p.i]
		p.i++
		if c == '"' {
			break
		}
		if c == '\\' {
			if p.end() {
				return nil, false
			}
			c = p.s[p.i]
			p.i++
		}
		if !tokenChars[c] {
			return nil, false // includes '"' and '\' once unescaped
		}
		if n < len(p.buf) {
			out = append(out, c)
		}
		n++
	}
	if n == 0 {
		return nil, false // "" is not a token
	}
	if n > len(p.buf) {
		return nil, true // too long for any valid value: the offer is declined
	}
	return out, true
}
