package wsproto

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"math"
	"strconv"
	"unsafe"
)

// Handshake parsing: the server side of the opening handshake (RFC 6455 §4.2)
// on the bytes of an HTTP/1.1 request (RFC 9112).
//
// ParseHandshake decides on the bytes received so far: NeedMore, Done or
// Reject, rejecting as soon as the bytes already make the request bad. It
// keeps no state, so a read loop that calls it again with the grown buffer
// after every read examines the request from its start each time: a request
// trickled one byte per TCP segment costs work quadratic in its size (bounded
// only by MaxRequestBytes).
//
// Incremental parsing: a HandshakeCursor, kept with the connection until the
// upgrade is decided, resumes where the previous read stopped. Both run the
// same line loop (lineLoop): each line is checked (request line, header count
// cap, header line syntax) once, when its LF arrives, so a cursor rejects at
// the same byte as ParseHandshake would; a call that returns NeedMore costs
// the bytes added since the previous call and allocates nothing. A cursor
// keeps offsets only, not what the lines said, so once a request that came
// in several reads is complete it is parsed whole once more, from its start,
// as ParseHandshake parses it; only that parse checks the headers together
// and builds the result. A request that arrives in one read is parsed once.
// A cursor's result for a buffer is exactly ParseHandshake's for it, for at
// most about twice the work of one ParseHandshake call on the whole request,
// whatever the chunking.

// Default caps applied when the HandshakeConfig fields are zero.
const (
	DefaultMaxRequestBytes = 8192
	DefaultMaxHeaders      = 64
)

// Subprotocol is the optional subprotocol of PROTOCOL.md, echoed when offered.
const Subprotocol = "wshub.v1"

// HandshakeConfig configures ParseHandshake. It is read-only during parsing and
// may be shared by all loops.
type HandshakeConfig struct {
	MaxRequestBytes int      // cap on the whole request incl. headers; default 8192 when 0
	MaxHeaders      int      // default 64 when 0
	Paths           []string // accepted paths, e.g. {"/ws"}; other paths -> 404; empty = any path
	// CheckOrigin decides on the Origin header ("" when the client sent none,
	// as non-browser clients do). nil = allow all; false -> 403.
	CheckOrigin func(origin string) bool
	// Compression enables permessage-deflate (RFC 7692, negotiate.go): the
	// first acceptable offer is accepted, and a Sec-WebSocket-Extensions
	// header that breaks RFC 6455's grammar is refused with 400. Off, the
	// header is not looked at and nothing is negotiated.
	Compression bool
}

// HandshakeStatus is the outcome of ParseHandshake.
type HandshakeStatus uint8

// Handshake outcomes.
const (
	HandshakeNeedMore HandshakeStatus = iota // request incomplete and still under the caps
	HandshakeDone                            // valid upgrade: write Response, then speak WebSocket
	HandshakeReject                          // write Response and close the connection
)

// Handshake is the result of ParseHandshake. Its strings and Response do not
// alias the input buffer, so they stay valid after the caller discards it.
type Handshake struct {
	Status HandshakeStatus
	// Consumed is the length of the request (Done, or Reject of a complete
	// request); bytes after it are the client's first frames: keep them. On a
	// Reject before the request is complete it is the number of bytes examined.
	Consumed int
	// Code is 101 on Done; the HTTP status on Reject: 400 (malformed, method,
	// http_version, upgrade, connection, host, key, version when missing,
	// headers, extensions), 403 (origin), 404 (path), 426 (version not 13), 431
	// (too_large: the request passed MaxRequestBytes).
	Code int
	// Reason is a short stable reason for metrics/logs: "method", "http_version",
	// "version", "upgrade", "connection", "key", "host", "path", "origin",
	// "too_large", "headers", "malformed", "extensions".
	Reason        string
	Path          string // e.g. "/ws"
	Query         string // raw query without '?', "" if none
	Authorization string // raw Authorization header value, "" if none
	Subprotocol   bool   // client offered wshub.v1 (echoed in Response)
	// Deflate is set when permessage-deflate was negotiated: the client may
	// send compressed messages (call Decoder.AllowCompressed(true)), and
	// neither side keeps a compression context between messages.
	Deflate bool
	// Compressed is set when the server may send this client compressed
	// messages made with a 32 KiB window, as the shared compressor makes
	// them: Deflate, and the client did not limit the server's window
	// (server_max_window_bits below 15). Otherwise every message to it goes
	// uncompressed, which RFC 7692 §6 allows.
	Compressed bool
	// Response is the complete HTTP response to write. Error responses are
	// shared and must not be modified.
	Response []byte
}

// Reject reasons (Handshake.Reason).
const (
	reasonMalformed   = "malformed"
	reasonMethod      = "method"
	reasonHTTPVersion = "http_version"
	reasonVersion     = "version"
	reasonUpgrade     = "upgrade"
	reasonConnection  = "connection"
	reasonKey         = "key"
	reasonHost        = "host"
	reasonPath        = "path"
	reasonOrigin      = "origin"
	reasonTooLarge    = "too_large"
	reasonHeaders     = "headers"
	reasonExtensions  = "extensions"
)

// ParseHandshake examines the bytes received so far. It returns NeedMore when
// the request is incomplete and still under the caps, and Reject as soon as it
// is certain the request is bad (including over the cap). It keeps no state:
// call it again with the grown buffer, or use a HandshakeCursor to resume
// where the previous call stopped. The outcome does not depend on how the
// bytes were split across calls.
//
// Status choices: PROTOCOL.md says a request that is not a valid upgrade gets
// 400, so a wrong method is 400 (not 405); an oversized request is 431; only a
// Sec-WebSocket-Version other than 13 gets 426 (a missing one is 400, as in
// gobwas/ws). The path is checked right after the request line, so a plain GET
// of another path is 404 whatever its headers.
func ParseHandshake(buf []byte, cfg *HandshakeConfig) Handshake {
	var l lineLoop
	return l.parse(buf, cfg)
}

// parse is ParseHandshake from where l stands.
func (l *lineLoop) parse(buf []byte, cfg *HandshakeConfig) Handshake {
	if cfg == nil {
		cfg = &defaultConfig
	}
	var rl requestLine
	var h headers
	return decideInto(l.run(buf, cfg, &rl, &h), cfg, &rl, &h, nil)
}

// decideInto makes the Handshake of an outcome of lineLoop.run. On Done it
// checks the headers together and builds the response, in out when it has
// the room.
func decideInto(r lineOutcome, cfg *HandshakeConfig, rl *requestLine, h *headers, out []byte) Handshake {
	switch r.status {
	case HandshakeNeedMore:
		return Handshake{}
	case HandshakeReject:
		return reject(r.consumed, r.code, r.reason)
	}
	if code, reason := h.check(cfg); code != 0 {
		return reject(r.consumed, code, reason)
	}
	return accept(r.consumed, rl, h, cfg.Compression, out)
}

// lineLoop is the line loop of ParseHandshake: it examines the request line
// by line, each line once it is complete, and rejects a line as soon as it is
// complete and wrong. Its fields say where the loop stands in the request;
// they are all a HandshakeCursor keeps between reads. Offsets count from the
// start of the request.
type lineLoop struct {
	start   int  // offset of the first line not examined yet
	scanned int  // buf[start:scanned] holds no '\n'
	lines   int  // complete lines examined: 0 until the request line is complete
	spaced  bool // the incomplete first line holds a space: its method part is complete
	// work counts the bytes examined (searched for '\n', or handed to the
	// per-line checks) by this run; tests use it to check that a cursor
	// does linear work. It is not kept by a cursor.
	work int
}

// lineOutcome is how lineLoop.run ended: Done when it reached the empty line
// that ends the header section (consumed is then the request's length);
// Reject with the HTTP status, reason and Consumed; or NeedMore (the lineLoop
// then says where to resume once buf has grown). It is small, unlike
// Handshake, so that the NeedMore of a trickled request costs no copying of
// results.
type lineOutcome struct {
	status   HandshakeStatus
	code     int
	reason   string
	consumed int
}

// run examines the lines of buf from where l stands, until the header
// section ends, a line is refused or buf ends. rl and h receive what the
// lines examined by this run hold. When earlier runs (earlier reads of a
// cursor) examined complete lines, those are not in rl and h: once the
// header section is complete, run then examines the request whole once
// more, from its start, so that on Done rl and h hold all of it.
//
// A line ends in CRLF or a bare LF (RFC 9112 §2.2 lets a recipient accept
// it). A bare CR or a NUL left inside the line is rejected by the character
// checks every line goes through (token, target and value checks).
//
// The per-line checks (request line, header count cap, header line syntax)
// may depend only on the line and its index, not on earlier header lines:
// a cursor runs them with an rl and h that saw only the lines of one read.
// What depends on several lines is h.check, which runs once, on the whole
// request.
func (l *lineLoop) run(buf []byte, cfg *HandshakeConfig, rl *requestLine, h *headers) lineOutcome {
	maxBytes, maxHeaders := cfg.MaxRequestBytes, cfg.MaxHeaders
	if maxBytes <= 0 {
		maxBytes = DefaultMaxRequestBytes
	}
	if maxHeaders <= 0 {
		maxHeaders = DefaultMaxHeaders
	}
	// Only the first maxBytes bytes may hold the request; looking no further
	// keeps the outcome independent of how much extra the client sent.
	scan := buf
	if len(scan) > maxBytes {
		scan = scan[:maxBytes]
	}
	resumed := l.lines > 0
	for {
		tail := scan[l.scanned:]
		i := bytes.IndexByte(tail, '\n')
		if i < 0 {
			l.work += len(tail)
			if l.lines == 0 && !l.spaced {
				// The bytes before tail were checked by earlier runs.
				l.work += len(tail)
				ok, spaced := tokenPrefix(tail)
				if !ok {
					return refuse(len(scan), 400, reasonMalformed)
				}
				l.spaced = spaced
			}
			l.scanned = len(scan)
			if len(buf) >= maxBytes {
				return refuse(len(scan), 431, reasonTooLarge)
			}
			return lineOutcome{status: HandshakeNeedMore}
		}
		l.work += i + 1
		r := l.line(scan, l.scanned+i, cfg, maxHeaders, rl, h)
		switch {
		case r.status == HandshakeNeedMore:
			continue
		case r.status == HandshakeDone && resumed:
			resumed = false
			*l, *rl, *h = lineLoop{work: l.work}, requestLine{}, headers{}
			continue
		}
		return r
	}
}

// line applies the per-line checks to the complete line of scan that starts
// at l.start and whose LF is at end: line l.lines, the request line first.
// It returns Done on the empty line ending the header section, a Reject, or
// NeedMore when the loop goes on with the next line. It is apart from run so
// that run, which a trickled request calls at every read, stays small.
func (l *lineLoop) line(scan []byte, end int, cfg *HandshakeConfig, maxHeaders int, rl *requestLine, h *headers) lineOutcome {
	next := end + 1
	line := scan[l.start:end]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1] // CRLF; a bare LF ends a line too
	}
	l.work += len(line)
	switch {
	case l.lines == 0:
		if code, reason := rl.parse(line, cfg); code != 0 {
			return refuse(next, code, reason)
		}
	case len(line) == 0:
		l.start, l.scanned = next, next
		return lineOutcome{status: HandshakeDone, consumed: next}
	case l.lines-1 == maxHeaders:
		return refuse(next, 400, reasonHeaders)
	case !h.add(line):
		return refuse(next, 400, reasonMalformed)
	}
	l.start, l.scanned = next, next
	l.lines++
	return lineOutcome{status: HandshakeNeedMore}
}

// HandshakeCursor resumes ParseHandshake across reads of one request: where
// the line loop stands (offsets in the request, lines examined), no reference
// to the buffer and nothing from the header lines, so it costs 16 bytes in
// every connection that is mid-upgrade. The zero value is ready for a request.
type HandshakeCursor struct {
	start, scanned, lines uint32 // lineLoop's start, scanned and lines
	spaced                bool
}

// Parse examines buf, everything received so far for this request: each
// call's buf must extend the previous call's (same prefix, more bytes), and
// cfg must stay the same. It returns exactly what ParseHandshake(buf, cfg)
// returns, Consumed included, but a call that returns NeedMore costs work
// proportional to the bytes added since the previous call (plus the lines
// they complete), and allocates nothing; the request is parsed whole once,
// when complete (not again when its lines all completed in the last call,
// as when one read brings all of it).
//
// The cursor only advances on NeedMore: after a Done or a Reject, calling
// Parse again (with buf or a longer one) returns the same outcome. A buf
// shorter than the part already examined starts the request over.
func (c *HandshakeCursor) Parse(buf []byte, cfg *HandshakeConfig) Handshake {
	var l lineLoop
	return c.parse(&l, buf, cfg, nil)
}

// ParseInto is Parse building a Done result's Response, Query,
// Authorization and Path in out's capacity instead of a new allocation
// (when it is large enough: MaxResponseRoom plus the request's query and
// Authorization). They then view out, and are only valid until out is used
// again: a server parsing many upgrades on one goroutine reuses one out and
// allocates nothing per upgrade, as long as it copies what it keeps.
func (c *HandshakeCursor) ParseInto(buf []byte, cfg *HandshakeConfig, out []byte) Handshake {
	var l lineLoop
	return c.parse(&l, buf, cfg, out)
}

// MaxResponseRoom is what a 101 response takes at most in ParseInto's out,
// besides the query, Authorization and path it also holds.
const MaxResponseRoom = len(resp101) + 28 + 4 + len(respProtocol) + len(respDeflate) + len(respServerBits) + 2

// parse is Parse, running the line loop in l (where tests read l.work);
// out, when not nil, is ParseInto's buffer.
func (c *HandshakeCursor) parse(l *lineLoop, buf []byte, cfg *HandshakeConfig, out []byte) Handshake {
	if uint64(len(buf)) > math.MaxUint32 {
		return l.parse(buf, cfg) // offsets would not fit (a MaxRequestBytes over 4 GiB)
	}
	if cfg == nil {
		cfg = &defaultConfig
	}
	if int(c.scanned) > len(buf) {
		c.Reset()
	}
	*l = lineLoop{start: int(c.start), scanned: int(c.scanned), lines: int(c.lines), spaced: c.spaced}
	var rl requestLine
	var h headers
	r := l.run(buf, cfg, &rl, &h)
	if r.status == HandshakeNeedMore {
		c.start, c.scanned, c.lines, c.spaced = uint32(l.start), uint32(l.scanned), uint32(l.lines), l.spaced
		return Handshake{} // decide's NeedMore, without copying a Handshake at every read
	}
	return decideInto(r, cfg, &rl, &h, out)
}

// Reset prepares the cursor for a new request.
func (c *HandshakeCursor) Reset() { *c = HandshakeCursor{} }

var defaultConfig HandshakeConfig

func refuse(consumed, code int, reason string) lineOutcome {
	return lineOutcome{status: HandshakeReject, code: code, reason: reason, consumed: consumed}
}

func reject(consumed, code int, reason string) Handshake {
	return Handshake{
		Status:   HandshakeReject,
		Consumed: consumed,
		Code:     code,
		Reason:   reason,
		Response: RejectResponse(code),
	}
}

// requestLine holds the parts of "GET /path?query HTTP/1.1".
type requestLine struct {
	path  []byte
	query []byte
	// known is the cfg.Paths entry equal to path, so that Handshake.Path needs
	// no copy; anyPath is set instead when cfg.Paths is empty.
	known   string
	anyPath bool
}

// parse checks the request line. It returns a non-zero HTTP status on failure.
func (rl *requestLine) parse(line []byte, cfg *HandshakeConfig) (int, string) {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || !isToken(line[:sp]) {
		return 400, reasonMalformed
	}
	method, rest := line[:sp], line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return 400, reasonMalformed
	}
	target, version := rest[:sp], rest[sp+1:]
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return 400, reasonMalformed
		}
	}
	if !validHTTPVersion(version) {
		return 400, reasonMalformed
	}
	rl.path = target
	if q := bytes.IndexByte(target, '?'); q >= 0 {
		rl.path, rl.query = target[:q], target[q+1:]
	}
	rl.anyPath = len(cfg.Paths) == 0
	if !rl.anyPath && !rl.match(cfg.Paths) {
		return 404, reasonPath
	}
	if string(method) != "GET" {
		return 400, reasonMethod
	}
	// HTTP/1.1 or later: an HTTP/1.0 client cannot upgrade (RFC 6455 §4.1).
	if version[5] < '1' || version[5] == '1' && version[7] < '1' {
		return 400, reasonHTTPVersion
	}
	return 0, ""
}

// match looks the path up in paths, recording the entry found.
func (rl *requestLine) match(paths []string) bool {
	for _, p := range paths {
		if string(rl.path) == p {
			rl.known = p
			return true
		}
	}
	return false
}

// validHTTPVersion reports whether v is "HTTP/" DIGIT "." DIGIT.
func validHTTPVersion(v []byte) bool {
	return len(v) == 8 && string(v[:5]) == "HTTP/" && isDigit(v[5]) && v[6] == '.' && isDigit(v[7])
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// headers collects what the upgrade needs from the header lines.
type headers struct {
	host, upgrade, connection bool
	hostDup                   bool
	versionCount              uint8 // saturates at 2: only 0, 1 or "several" matter
	keyCount                  uint8 // same
	subprotocol               bool
	version                   []byte
	key                       []byte
	origin                    []byte
	authorization             []byte
	hasOrigin, hasAuth        bool
	ext                       extensions // Sec-WebSocket-Extensions, all lines
}

// add records one header line; false when the line is malformed.
func (h *headers) add(line []byte) bool {
	if line[0] == ' ' || line[0] == '\t' {
		return false // obsolete line folding (RFC 9112 §5.2: reject with 400)
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 || !isToken(line[:colon]) {
		return false // includes whitespace before the colon (RFC 9112 §5.1)
	}
	name, value := line[:colon], trimOWS(line[colon+1:])
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	// Dispatch on the length first: a cheap switch before any case folding.
	switch len(name) {
	case 4:
		if bytes.EqualFold(name, []byte("host")) {
			h.hostDup = h.host
			h.host = true
		}
	case 6:
		if bytes.EqualFold(name, []byte("origin")) && !h.hasOrigin {
			h.origin, h.hasOrigin = value, true
		}
	case 7:
		if bytes.EqualFold(name, []byte("upgrade")) {
			h.upgrade = h.upgrade || hasToken(value, "websocket")
		}
	case 10:
		if bytes.EqualFold(name, []byte("connection")) {
			h.connection = h.connection || hasToken(value, "upgrade")
		}
	case 13:
		if bytes.EqualFold(name, []byte("authorization")) && !h.hasAuth {
			h.authorization, h.hasAuth = value, true
		}
	case 17:
		if bytes.EqualFold(name, []byte("sec-websocket-key")) {
			h.key = value
			h.keyCount = min(h.keyCount+1, 2)
		}
	case 21:
		if bytes.EqualFold(name, []byte("sec-websocket-version")) {
			h.version = value
			h.versionCount = min(h.versionCount+1, 2)
		}
	case 24:
		if bytes.EqualFold(name, []byte("sec-websocket-extensions")) {
			h.ext.add(value)
		}
	case 22:
		if bytes.EqualFold(name, []byte("sec-websocket-protocol")) {
			// Subprotocol names are case-sensitive (RFC 6455 §4.1).
			h.subprotocol = h.subprotocol || hasTokenExact(value, Subprotocol)
		}
	}
	return true
}

// check validates the collected headers once the request is complete.
func (h *headers) check(cfg *HandshakeConfig) (int, string) {
	switch {
	case !h.host || h.hostDup:
		return 400, reasonHost
	case !h.upgrade:
		return 400, reasonUpgrade
	case !h.connection:
		return 400, reasonConnection
	case h.versionCount == 0:
		return 400, reasonVersion
	case h.versionCount > 1 || string(h.version) != "13":
		return 426, reasonVersion
	case h.keyCount != 1 || !validKey(h.key):
		return 400, reasonKey
	case cfg.Compression && h.ext.bad:
		// RFC 6455 §4.2.1: a request that breaks the ABNF of any part of
		// the handshake is answered 400. An offer that is well-formed but
		// unacceptable is declined instead (RFC 7692 §7), never refused.
		// Without Compression the header is not one we process.
		return 400, reasonExtensions
	}
	if cfg.CheckOrigin != nil && !cfg.CheckOrigin(string(h.origin)) {
		return 403, reasonOrigin
	}
	return 0, ""
}

// validKey reports whether key is base64 of exactly 16 bytes (RFC 6455 §4.1).
func validKey(key []byte) bool {
	if len(key) != 24 {
		return false
	}
	var dst [18]byte
	n, err := base64.StdEncoding.Decode(dst[:], key)
	return err == nil && n == 16
}

// acceptGUID is the fixed GUID of RFC 6455 §1.3.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptKey computes Sec-WebSocket-Accept for a Sec-WebSocket-Key value into a
// 28-byte array, without allocating.
func AcceptKey(key []byte) (out [28]byte) {
	var in [64]byte // keys are validated to 24 bytes; larger input falls back to the heap
	p := append(in[:0], key...)
	p = append(p, acceptGUID...)
	sum := sha1.Sum(p)
	base64.StdEncoding.Encode(out[:], sum[:])
	return out
}

const (
	resp101      = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
	respProtocol = "\r\nSec-WebSocket-Protocol: " + Subprotocol
	// respDeflate answers every accepted permessage-deflate offer: no
	// context on either side (negotiate.go says why).
	respDeflate    = "\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	respServerBits = "; server_max_window_bits="
)

// accept builds the Done result. Response, Query, Authorization (and Path when
// any path is allowed) share one allocation: the strings are views of the bytes
// after the response, which nothing ever writes again.
func accept(consumed int, rl *requestLine, h *headers, compression bool, out []byte) Handshake {
	deflate := compression && h.ext.deflate
	size := len(resp101) + 28 + 4 + len(rl.query) + len(h.authorization)
	if h.subprotocol {
		size += len(respProtocol)
	}
	if deflate {
		size += len(respDeflate) + len(respServerBits) + 2
	}
	if rl.anyPath {
		size += len(rl.path)
	}
	b := out[:0]
	if cap(b) < size {
		b = make([]byte, 0, size)
	}
	b = append(b, resp101...)
	acc := AcceptKey(h.key)
	b = append(b, acc[:]...)
	if h.subprotocol {
		b = append(b, respProtocol...)
	}
	if deflate {
		b = append(b, respDeflate...)
		if h.ext.serverBits != 0 {
			// RFC 7692 §7.1.2.1: accepting the parameter means answering it,
			// with the offered value or less; we answer the value.
			b = append(b, respServerBits...)
			b = strconv.AppendUint(b, uint64(h.ext.serverBits), 10)
		}
	}
	b = append(b, "\r\n\r\n"...)
	hs := Handshake{
		Status:      HandshakeDone,
		Consumed:    consumed,
		Code:        101,
		Path:        rl.known,
		Subprotocol: h.subprotocol,
		Deflate:     deflate,
		Compressed:  deflate && (h.ext.serverBits == 0 || h.ext.serverBits == maxWindowBits),
		Response:    b[:len(b):len(b)],
	}
	hs.Query, b = tailString(b, rl.query)
	hs.Authorization, b = tailString(b, h.authorization)
	if rl.anyPath {
		hs.Path, _ = tailString(b, rl.path)
	}
	return hs
}

// tailString appends s to b (which has the capacity) and returns it as a string
// viewing b's new tail.
func tailString(b, s []byte) (string, []byte) {
	if len(s) == 0 {
		return "", b
	}
	n := len(b)
	b = append(b, s...)
	return unsafe.String(&b[n], len(s)), b
}

// trimOWS removes optional whitespace (SP, HTAB) at both ends.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// hasToken reports whether the comma-separated list contains token,
// compared case-insensitively (Upgrade and Connection values).
func hasToken(list []byte, token string) bool {
	for len(list) > 0 {
		var item []byte
		item, list = cutComma(list)
		if bytes.EqualFold(item, []byte(token)) {
			return true
		}
	}
	return false
}

// hasTokenExact is hasToken with a case-sensitive comparison.
func hasTokenExact(list []byte, token string) bool {
	for len(list) > 0 {
		var item []byte
		item, list = cutComma(list)
		if string(item) == token {
			return true
		}
	}
	return false
}

func cutComma(list []byte) (item, rest []byte) {
	if i := bytes.IndexByte(list, ','); i >= 0 {
		return trimOWS(list[:i]), list[i+1:]
	}
	return trimOWS(list), nil
}

// tokenChars marks the tchar set of RFC 9110 §5.6.2.
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isToken(b []byte) bool {
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return len(b) > 0
}

// tokenPrefix reports whether an incomplete first line may still become a
// valid request line (ok): its method part holds token characters only. This
// lets a TLS ClientHello or binary junk be refused at once instead of after
// the handshake timeout, with the same outcome as when the whole line is
// present. spaced reports that b holds the space ending the method part, so
// bytes after b need no check. A CR passes: "GET\r" may still become the line
// "GET" (refused as malformed once its LF arrives).
func tokenPrefix(b []byte) (ok, spaced bool) {
	for _, c := range b {
		if c == ' ' {
			return true, true
		}
		if !tokenChars[c] && c != '\r' {
			return false, false
		}
	}
	return true, false
}
