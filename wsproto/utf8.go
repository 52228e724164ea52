package wsproto

import "unicode/utf8"

// validUTF8Prefix validates b, the text of a message so far from the start of
// a code point. With fin, b must be complete UTF-8. Otherwise b may end in an
// incomplete sequence, provided some continuation could still make it valid;
// its length is returned as tail, so that the next fragment is checked from
// there. Fail fast: a sequence that can never become valid fails at once.
//
// The bulk goes through utf8.Valid (it has an ASCII fast path); only the at
// most three trailing bytes are checked by hand.
func validUTF8Prefix(b []byte, fin bool) (tail int, ok bool) {
	tail = incompleteTail(b)
	if !utf8.Valid(b[:len(b)-tail]) {
		return 0, false
	}
	if tail > 0 && (fin || !canComplete(b[len(b)-tail:])) {
		return 0, false
	}
	return tail, true
}

// incompleteTail returns the length of the sequence at the end of b whose lead
// byte announces more bytes than follow it (0 when b ends on a boundary, or in
// bytes that utf8.Valid will reject anyway).
func incompleteTail(b []byte) int {
	for i := 1; i <= 3 && i <= len(b); i++ {
		c := b[len(b)-i]
		if c&0xC0 == 0x80 {
			continue // continuation byte: the lead is further back
		}
		if c >= 0xC0 && seqLen(c) > i {
			return i
		}
		return 0
	}
	return 0
}

// seqLen is the sequence length a lead byte >= 0xC0 announces (invalid lead
// bytes are rejected by canComplete).
func seqLen(c byte) int {
	switch {
	case c < 0xE0:
		return 2
	case c < 0xF0:
		return 3
	}
	return 4
}

// canComplete reports whether p, a lead byte and fewer continuation bytes than
// it announces, is the start of some valid UTF-8 sequence (RFC 3629 §4: no
// overlong forms, no surrogates, nothing above U+10FFFF).
func canComplete(p []byte) bool {
	lo, hi := byte(0x80), byte(0xBF) // allowed range of the second byte
	switch c := p[0]; {
	case c >= 0xC2 && c <= 0xDF, c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF, c >= 0xF1 && c <= 0xF3:
	case c == 0xE0:
		lo = 0xA0
	case c == 0xED:
		hi = 0x9F
	case c == 0xF0:
		lo = 0x90
	case c == 0xF4:
		hi = 0x8F
	default:
		return false
	}
	if len(p) > 1 && (p[1] < lo || p[1] > hi) {
		return false
	}
	return len(p) < 3 || p[2]&0xC0 == 0x80
}
