package redis

import (
	"errors"
	"strconv"
	"unsafe"
)

// Envelope type bytes on an instance channel (see the package doc).
const (
	envProbe  = 'P'
	envDirect = 'D'
)

var errEnvelope = errors.New("redis: malformed instance envelope")

// appendProbe encodes liveness probe seq.
func appendProbe(dst []byte, seq uint64) []byte {
	return strconv.AppendUint(append(dst, envProbe), seq, 10)
}

// parseProbe decodes a liveness probe; ok is false for any other payload.
func parseProbe(msg string) (seq uint64, ok bool) {
	if len(msg) == 0 || msg[0] != envProbe {
		return 0, false
	}
	n, _, ok := cutNumber(msg[1:]+"\n", '\n')
	return uint64(n), ok
}

// appendDirect encodes an addressed send of data to conns.
func appendDirect(dst []byte, conns []string, data []byte) []byte {
	dst = append(dst, envDirect)
	dst = strconv.AppendInt(dst, int64(len(conns)), 10)
	dst = append(dst, '\n')
	for _, c := range conns {
		dst = strconv.AppendInt(dst, int64(len(c)), 10)
		dst = append(dst, ':')
		dst = append(dst, c...)
	}
	return append(dst, data...)
}

// parseDirect decodes an addressed send and calls fn for each connection. It
// validates the whole envelope before the first call, so a malformed one
// delivers nothing.
func parseDirect(msg string, fn func(conn string, data []byte)) error {
	if len(msg) == 0 || msg[0] != envDirect {
		return errEnvelope
	}
	n, rest, ok := cutNumber(msg[1:], '\n')
	if !ok || n == 0 {
		return errEnvelope
	}
	start := rest
	for i := 0; i < n; i++ {
		l, r, ok := cutNumber(rest, ':')
		if !ok || l > len(r) {
			return errEnvelope
		}
		rest = r[l:]
	}
	data := stringBytes(rest)
	rest = start
	for i := 0; i < n; i++ {
		l, r, _ := cutNumber(rest, ':')
		fn(r[:l], data)
		rest = r[l:]
	}
	return nil
}

// cutNumber parses a small decimal number terminated by sep.
func cutNumber(s string, sep byte) (n int, rest string, ok bool) {
	for i := 0; i < len(s) && i < 10; i++ {
		c := s[i]
		if c == sep && i > 0 {
			return n, s[i+1:], true
		}
		if c < '0' || c > '9' {
			return 0, "", false
		}
		n = n*10 + int(c-'0')
	}
	return 0, "", false
}

// stringBytes views s as bytes without copying. rueidis hands messages over as
// freshly allocated strings; the receivers (hub.Sink, DirectHandler) only read
// them during the call, so no copy is needed.
func stringBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
