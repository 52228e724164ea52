package loadtest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
)

// replyOp is the "op" of a gateway-to-client object.
type replyOp uint8

const (
	replyUnknown replyOp = iota
	replyMessage
	replyOK
	replyError
	replyPong
	replyJoin  // presence: a connection joined the channel
	replyLeave // ... or left it
)

// reply is the part of a gateway reply the load generator looks at. Slices
// alias the message buffer: valid until the next read.
type reply struct {
	op      replyOp
	id      int64 // -1 when absent
	code    int64
	channel []byte
	data    []byte // raw JSON value

	// History (PROTOCOL.md, "Ordering and delivery"): a message's offset,
	// or a subscribe ok's latest offset, epoch, whether the since it was
	// given was recovered and how many messages it replays.
	offset    int64 // -1 when absent or not an integer
	epoch     []byte
	recovered int8  // recNone, recFalse or recTrue
	replayed  int64 // -1 when absent

	// Presence (PROTOCOL.md, "Presence"): a join's or leave's user, a
	// presence_stats ok's counts, a presence ok's members (how many) and
	// whether it said "truncated":true.
	user         []byte
	conns, users int64 // -1 when absent
	members      int64 // -1 when absent
	truncated    bool
}

// What a subscribe ok's "recovered" said.
const (
	recNone  int8 = iota // absent: no since was given, or the gateway has no history
	recFalse             // the gap is not in history: nothing replayed
	recTrue              // the gap is replayed before live messages
)

var errBadJSON = errors.New("malformed JSON reply")

// parseReply scans one reply object without allocating. It only needs to
// be as strict as finding the fields; it is not a validating JSON parser.
func parseReply(b []byte, r *reply) error {
	*r = reply{id: -1, offset: -1, replayed: -1, conns: -1, users: -1, members: -1}
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errBadJSON
	}
	i++
	for {
		i = skipSpace(b, i)
		if i < len(b) && b[i] == '}' {
			break
		}
		ks, ke, next, ok := scanString(b, i)
		if !ok {
			return errBadJSON
		}
		i = skipSpace(b, next)
		if i >= len(b) || b[i] != ':' {
			return errBadJSON
		}
		i = skipSpace(b, i+1)
		vs := i
		if i, ok = skipValue(b, i); !ok {
			return errBadJSON
		}
		val := b[vs:i]
		switch string(b[ks:ke]) { // no allocation: compiler-optimised comparison
		case "op":
			r.op = opOf(val)
		case "id":
			r.id = parseInt(val, -1)
		case "code":
			r.code = parseInt(val, 0)
		case "channel":
			if len(val) >= 2 && val[0] == '"' {
				r.channel = val[1 : len(val)-1]
			}
		case "data":
			r.data = val
		case "offset":
			r.offset = parseInt(val, -1)
		case "epoch":
			if len(val) >= 2 && val[0] == '"' {
				r.epoch = val[1 : len(val)-1]
			}
		case "recovered":
			switch string(val) {
			case "true":
				r.recovered = recTrue
			case "false":
				r.recovered = recFalse
			}
		case "replayed":
			r.replayed = parseInt(val, -1)
		case "user":
			if len(val) >= 2 && val[0] == '"' {
				r.user = val[1 : len(val)-1]
			}
		case "conns":
			r.conns = parseInt(val, -1)
		case "users":
			r.users = parseInt(val, -1)
		case "members":
			r.members = countElems(val)
		case "truncated":
			r.truncated = string(val) == "true"
		}
		i = skipSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i++
			continue
		}
		if i < len(b) && b[i] == '}' {
			break
		}
		return errBadJSON
	}
	return nil
}

func opOf(v []byte) replyOp {
	switch string(v) {
	case `"message"`:
		return replyMessage
	case `"ok"`:
		return replyOK
	case `"error"`:
		return replyError
	case `"pong"`:
		return replyPong
	case `"join"`:
		return replyJoin
	case `"leave"`:
		return replyLeave
	}
	return replyUnknown
}

// parsePayload reads "s" (sequence) and "t" (publish time, unix ns) from a
// load-generator payload object.
func parsePayload(b []byte) (seq, ts int64, ok bool) {
	seq, ts = -1, -1
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return 0, 0, false
	}
	i++
	for i < len(b) {
		i = skipSpace(b, i)
		ks, ke, next, sok := scanString(b, i)
		if !sok {
			return 0, 0, false
		}
		i = skipSpace(b, next)
		if i >= len(b) || b[i] != ':' {
			return 0, 0, false
		}
		i = skipSpace(b, i+1)
		vs := i
		if i, sok = skipValue(b, i); !sok {
			return 0, 0, false
		}
		switch string(b[ks:ke]) {
		case "s":
			seq = parseInt(b[vs:i], -1)
		case "t":
			ts = parseInt(b[vs:i], -1)
		}
		if seq >= 0 && ts >= 0 {
			return seq, ts, true
		}
		i = skipSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i++
		}
	}
	return 0, 0, false
}

// countElems is how many values the JSON array v holds, -1 when v is not
// an array.
func countElems(v []byte) int64 {
	if len(v) < 2 || v[0] != '[' {
		return -1
	}
	var n int64
	for i := skipSpace(v, 1); i < len(v) && v[i] != ']'; n++ {
		j, ok := skipValue(v, i)
		if !ok {
			return -1
		}
		if i = skipSpace(v, j); i < len(v) && v[i] == ',' {
			i = skipSpace(v, i+1)
		}
	}
	return n
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString expects a JSON string at b[i]; it returns the bounds of its
// raw contents and the index after the closing quote. It jumps from quote
// to quote (IndexByte is vectorised): payloads are mostly one long string.
func scanString(b []byte, i int) (start, end, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, 0, 0, false
	}
	for j := i + 1; j < len(b); {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			break
		}
		q := j + k
		bs := 0 // backslashes right before the quote: an odd count escapes it
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			bs++
		}
		if bs%2 == 0 {
			return i + 1, q, q + 1, true
		}
		j = q + 1
	}
	return 0, 0, 0, false
}

// skipValue returns the index just after the JSON value starting at b[i].
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		_, _, next, ok := scanString(b, i)
		return next, ok
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				_, _, next, ok := scanString(b, j)
				if !ok {
					return 0, false
				}
				j = next - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	default: // number, true, false, null
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\r' && b[j] != '\t' {
			j++
		}
		return j, j > i
	}
}

// parseInt parses a non-negative decimal integer, or returns def.
func parseInt(v []byte, def int64) int64 {
	if len(v) == 0 || len(v) > 19 {
		return def
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return def
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// appendPayload appends a load-generator payload {"s":S,"t":T,"p":"..."},
// size bytes in all when size leaves room for the header fields. The
// padding is a run of x, or with pad (textPadding) a window of it that moves
// with seq, so that every message differs.
func appendPayload(dst []byte, seq, ts int64, size int, pad []byte) []byte {
	start := len(dst)
	dst = append(dst, `{"s":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"t":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `,"p":"`...)
	n := size - (len(dst) - start) - 2
	if n > 0 && len(pad) > n {
		off := int(uint64(seq) * 7919 % uint64(len(pad)-n))
		dst = append(dst, pad[off:off+n]...)
		n = 0
	}
	for ; n > 0; n-- {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

// Padding kinds (Config.Padding).
const (
	PaddingX    = "x"    // a run of x: deflate shrinks it ~100 times
	PaddingText = "text" // feed-like text: deflate shrinks it about 3 times, as it does JSON quotes
)

// textPadding is n bytes of quote-free text that compresses like a JSON feed
// of quotes: the same few symbols and words, with varying numbers.
func textPadding(n int) []byte {
	r := rand.New(rand.NewPCG(7, 11))
	syms := []string{"ACME", "GLOBX", "INITECH", "UMBRL", "HOOLI", "STARK", "WAYNE", "CYBRD"}
	b := make([]byte, 0, n+64)
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, "{symbol:%s,bid:%.2f,ask:%.2f,volume:%d,ts:%d},", syms[r.IntN(len(syms))],
			100+r.Float64()*50, 100+r.Float64()*50, r.IntN(1e6), 1767225600000+int64(i)*37)
	}
	return b[:n]
}
