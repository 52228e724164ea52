package loadtest

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
)

// WebSocket opcodes used by the client.
const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// maxServerMessage caps a reassembled server message; the load generator
// only expects small JSON replies, so anything larger is a protocol error.
const maxServerMessage = 16 << 20

// maxResponseHeader caps the HTTP upgrade response.
const maxResponseHeader = 8 << 10

// appendClientFrame appends one final, masked client frame with the given
// opcode and payload to dst, masking with key as RFC 6455 §5.3 requires.
func appendClientFrame(dst []byte, op byte, payload []byte, key uint32) []byte {
	dst, start := beginClientFrame(dst, op, len(payload), key)
	dst = append(dst, payload...)
	maskBytes(dst[start:], key)
	return dst
}

// beginClientFrame reserves a masked frame header for a payload of exactly
// n bytes that the caller appends next and then masks in place (maskBytes
// from the returned offset).
// This lets a publish be built straight into the output buffer.
func beginClientFrame(dst []byte, op byte, n int, key uint32) ([]byte, int) {
	dst = append(dst, 0x80|op)
	switch {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = binary.BigEndian.AppendUint32(dst, key)
	return dst, len(dst)
}

// maskBytes XORs b with the 4-byte masking key (big-endian order of key).
func maskBytes(b []byte, key uint32) {
	var k [8]byte
	binary.BigEndian.PutUint32(k[:4], key)
	binary.BigEndian.PutUint32(k[4:], key)
	k64 := binary.LittleEndian.Uint64(k[:])
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k64)
	}
	for ; i < len(b); i++ {
		b[i] ^= k[i&3]
	}
}

// serverFrame is one decoded server frame header.
type serverFrame struct {
	fin     bool
	rsv1    bool // compressed (permessage-deflate); the poller checks it was negotiated
	op      byte
	payload []byte // aliases the input
}

var (
	errMaskedServerFrame = errors.New("server frame is masked")
	errReservedBits      = errors.New("server frame sets reserved bits")
	errFrameTooLarge     = errors.New("server frame too large")
	errBadOpcode         = errors.New("server frame has an unknown opcode")
	errBadControl        = errors.New("server control frame fragmented or over 125 bytes")
)

// parseServerFrame decodes one frame from the front of b. It returns the
// number of bytes used, 0 when b does not yet hold a whole frame.
func parseServerFrame(b []byte, f *serverFrame) (int, error) {
	if len(b) < 2 {
		return 0, nil
	}
	if b[0]&0x30 != 0 {
		return 0, errReservedBits
	}
	f.rsv1 = b[0]&0x40 != 0
	if b[1]&0x80 != 0 {
		return 0, errMaskedServerFrame
	}
	f.fin = b[0]&0x80 != 0
	f.op = b[0] & 0x0F
	n := uint64(b[1] & 0x7F)
	h := 2
	switch n {
	case 126:
		if len(b) < 4 {
			return 0, nil
		}
		n = uint64(binary.BigEndian.Uint16(b[2:]))
		h = 4
	case 127:
		if len(b) < 10 {
			return 0, nil
		}
		n = binary.BigEndian.Uint64(b[2:])
		h = 10
	}
	switch f.op {
	case opCont, opText, opBinary:
		if n > maxServerMessage {
			return 0, errFrameTooLarge
		}
	case opClose, opPing, opPong:
		if !f.fin || n > 125 {
			return 0, errBadControl
		}
	default:
		return 0, errBadOpcode
	}
	if uint64(len(b)-h) < n {
		return 0, nil
	}
	f.payload = b[h : h+int(n)]
	return h + int(n), nil
}

// handshakeGUID is RFC 6455's fixed suffix for Sec-WebSocket-Accept.
const handshakeGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// deflateOffer is what --compression offers: permessage-deflate with no
// context takeover either way, so that one inflater per poller serves all
// its connections (each message inflates on its own).
const deflateOffer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// appendUpgradeRequest appends the HTTP upgrade request for uri (the
// target's path and query) on host with the base64 key. A token, when not
// empty, is presented the two ways the gateway reads one: as the token
// query parameter after the target's own query, or with bearer in
// Authorization. It goes as is, so it must already be fit for where it
// goes (see tokenSource). With deflate it offers permessage-deflate.
func appendUpgradeRequest(dst []byte, host, uri string, key, token []byte, bearer, deflate bool) []byte {
	dst = append(dst, "GET "...)
	dst = append(dst, uri...)
	if len(token) > 0 && !bearer {
		if strings.IndexByte(uri, '?') >= 0 {
			dst = append(dst, "&token="...)
		} else {
			dst = append(dst, "?token="...)
		}
		dst = append(dst, token...)
	}
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "...)
	dst = append(dst, key...)
	if len(token) > 0 && bearer {
		dst = append(dst, "\r\nAuthorization: Bearer "...)
		dst = append(dst, token...)
	}
	if deflate {
		dst = append(dst, "\r\nSec-WebSocket-Extensions: "+deflateOffer...)
	}
	dst = append(dst, "\r\nSec-WebSocket-Version: 13\r\n\r\n"...)
	return dst
}

// acceptFor computes the Sec-WebSocket-Accept value expected for key.
func acceptFor(key []byte) []byte {
	h := sha1.New()
	h.Write(key)
	h.Write([]byte(handshakeGUID))
	out := make([]byte, base64.StdEncoding.EncodedLen(sha1.Size))
	base64.StdEncoding.Encode(out, h.Sum(nil))
	return out
}

// handshakeError is a refused or malformed upgrade response.
type handshakeError struct {
	msg    string
	status int // the HTTP status the gateway refused the upgrade with; 0 when the response is malformed
}

func (e *handshakeError) Error() string { return e.msg }

// parseUpgradeResponse examines the bytes received so far. It returns the
// length of the complete response head (0 when more bytes are needed), or
// an error when the response is not a valid 101 for key accept or accepts
// an extension other than the permessage-deflate offered; and whether
// permessage-deflate was accepted.
func parseUpgradeResponse(b, accept []byte, offered bool) (int, bool, error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) > maxResponseHeader {
			return 0, false, &handshakeError{msg: "upgrade response head too large"}
		}
		return 0, false, nil
	}
	head := b[:end]
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	// "HTTP/1.1 101 Switching Protocols"
	parts := bytes.SplitN(line, []byte(" "), 3)
	var status int
	if len(parts) >= 2 && len(parts[1]) == 3 {
		status, _ = strconv.Atoi(string(parts[1]))
	}
	if status < 100 || !bytes.HasPrefix(parts[0], []byte("HTTP/1.")) {
		return 0, false, &handshakeError{msg: "malformed status line " + strconv.Quote(string(line))}
	}
	if status != 101 {
		return 0, false, &handshakeError{msg: "upgrade refused with HTTP " + string(parts[1]), status: status}
	}
	var gotAccept []byte
	deflate := false
	for len(rest) > 0 {
		var hl []byte
		hl, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, val, ok := bytes.Cut(hl, []byte(":"))
		name = bytes.TrimSpace(name)
		switch {
		case !ok:
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Accept")):
			gotAccept = bytes.TrimSpace(val)
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Extensions")):
			// RFC 6455 §4.1: the client fails what it did not offer. The
			// gateway answers with the offer's parameters (or a subset).
			ext, params, _ := bytes.Cut(bytes.TrimSpace(val), []byte(";"))
			if !offered || !bytes.Equal(bytes.TrimSpace(ext), []byte("permessage-deflate")) || deflate ||
				bytes.Contains(params, []byte("max_window_bits")) || bytes.IndexByte(params, ',') >= 0 {
				return 0, false, &handshakeError{msg: "unexpected Sec-WebSocket-Extensions " + strconv.Quote(string(val))}
			}
			deflate = true
		}
	}
	if !bytes.Equal(gotAccept, accept) {
		return 0, false, &handshakeError{msg: "wrong or missing Sec-WebSocket-Accept"}
	}
	return end + 4, deflate, nil
}
