package hub

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/wshub/wshub/hub/history"
)

// opKind is a client command's op (PROTOCOL.md).
type opKind uint8

const (
	opInvalid opKind = iota // malformed or unknown command (metrics only)
	opSubscribe
	opUnsubscribe
	opPublish
	opPing
	opInfo          // extension: the connection's own ids
	opRefresh       // extension: replace the connection's token
	opPresence      // extension: a presence channel's members
	opPresenceStats // extension: a presence channel's counts
	numOps
)

var opNames = [numOps]string{"invalid", "subscribe", "unsubscribe", "publish", "ping", "info", "refresh", "presence", "presence_stats"}

// command is one parsed client command. Its slices point into the message
// (or, for the rare escaped channel name, into a fresh copy).
type command struct {
	op       opKind
	hasID    bool
	hasSince bool
	hasEpoch bool
	id       uint64
	since    uint64 // subscribe: the last offset the client saw
	epoch    []byte // subscribe: the stream epoch that offset belongs to
	channel  []byte
	data     []byte
	token    []byte // refresh
}

// rawField is one top-level member of interest as found by the scanner.
type rawField struct {
	present bool
	escaped bool // string with escapes: its value differs from its raw bytes
	kind    jsonKind
	val     []byte // the value's bytes, quotes included for strings
}

// str returns a string field's value: its raw bytes between the quotes, or a
// decoded copy when it has escapes.
func (f *rawField) str() []byte {
	if f.escaped {
		return unescape(f.val)
	}
	return f.val[1 : len(f.val)-1]
}

// Errors that need no formatting are built once.
var (
	errNotObject   = &Error{400, "command must be a JSON object"}
	errBadID       = &Error{400, "id must be a non-negative integer"}
	errMissingOp   = &Error{400, "missing op"}
	errOpType      = &Error{400, "op must be a string"}
	errMissingChan = &Error{400, "missing channel"}
	errChanType    = &Error{400, "channel must be a string"}
	errMissingData = &Error{400, "missing data"}
	errSinceType   = &Error{400, "since must be an offset: an integer from 0 to 2^53-1"}
	errEpochType   = &Error{400, "epoch must be a string"}
	errMissingTok  = &Error{400, "missing token"}
	errTokenType   = &Error{400, "token must be a string"}
	errEmptyChan   = &Error{422, "channel name is empty"}
	errLongChan    = &Error{422, "channel name is longer than 255 bytes"}
)

// fields are the top-level members a command or API body may carry.
type fields struct {
	op, id, channel, data, since rawField
	epoch                        rawField // subscribe with since
	token                        rawField // refresh
	conn, user                   rawField // POST /api/send
}

// scanFields validates msg as one JSON object and locates its known members
// (the last of duplicates wins; unknown members are validated and ignored).
func scanFields(msg []byte, fs *fields) *Error {
	i := skipSpace(msg, 0)
	if i >= len(msg) || msg[i] != '{' {
		_, end, serr := scanValue(msg, i, 0)
		switch {
		case serr != nil:
			return malformed(serr.off, serr.msg)
		case skipSpace(msg, end) != len(msg):
			return malformed(skipSpace(msg, end), "unexpected data after the value")
		}
		return errNotObject
	}
	i = skipSpace(msg, i+1)
	if i < len(msg) && msg[i] == '}' {
		i++
	} else {
		for {
			if i >= len(msg) || msg[i] != '"' {
				return malformed(i, "expected a string key")
			}
			kend, kesc, serr := scanString(msg, i)
			if serr != nil {
				return malformed(serr.off, serr.msg)
			}
			key := msg[i+1 : kend-1]
			if kesc {
				key = unescape(msg[i:kend]) // never done by sane clients
			}
			i = skipSpace(msg, kend)
			if i >= len(msg) || msg[i] != ':' {
				return malformed(i, "expected ':' after a key")
			}
			i = skipSpace(msg, i+1)
			kind, vend, serr := scanValue(msg, i, 1)
			if serr != nil {
				return malformed(serr.off, serr.msg)
			}
			f := rawField{present: true, kind: kind, val: msg[i:vend]}
			if kind == kindString {
				f.escaped = bytes.IndexByte(f.val, '\\') >= 0
			}
			switch string(key) {
			case "op":
				fs.op = f
			case "id":
				fs.id = f
			case "channel":
				fs.channel = f
			case "data":
				fs.data = f
			case "since":
				fs.since = f
			case "epoch":
				fs.epoch = f
			case "token":
				fs.token = f
			case "conn":
				fs.conn = f
			case "user":
				fs.user = f
			}
			i = skipSpace(msg, vend)
			if i >= len(msg) {
				return malformed(i, "unexpected end of input")
			}
			if msg[i] == '}' {
				i++
				break
			}
			if msg[i] != ',' {
				return malformed(i, "expected ',' or '}'")
			}
			i = skipSpace(msg, i+1)
		}
	}
	if i = skipSpace(msg, i); i != len(msg) {
		return malformed(i, "unexpected data after the object")
	}
	return nil
}

// parseCommand parses msg into cmd. On failure cmd.hasID tells whether the
// error reply may carry the command's id (never for malformed JSON or a bad
// id), and cmd.op is set when the op was recognised.
func parseCommand(msg []byte, cmd *command) *Error {
	*cmd = command{}
	var fs fields
	if err := scanFields(msg, &fs); err != nil {
		return err
	}
	op, id, ch, data, since := &fs.op, &fs.id, &fs.channel, &fs.data, &fs.since
	if id.present {
		v, ok := parseID(*id)
		if !ok {
			return errBadID
		}
		cmd.id, cmd.hasID = v, true
	}
	if !op.present {
		return errMissingOp
	}
	if op.kind != kindString {
		return errOpType
	}
	name := op.str()
	switch string(name) {
	case "subscribe":
		cmd.op = opSubscribe
	case "unsubscribe":
		cmd.op = opUnsubscribe
	case "publish":
		cmd.op = opPublish
	case "ping":
		cmd.op = opPing
		return nil
	case "info":
		cmd.op = opInfo
		return nil
	case "presence":
		cmd.op = opPresence
	case "presence_stats":
		cmd.op = opPresenceStats
	case "refresh":
		cmd.op = opRefresh
		switch {
		case !fs.token.present:
			return errMissingTok
		case fs.token.kind != kindString:
			return errTokenType
		}
		cmd.token = fs.token.str()
		return nil
	default:
		return &Error{400, "unknown op " + strconv.Quote(truncate(string(name), 64))}
	}

	if !ch.present {
		return errMissingChan
	}
	if ch.kind != kindString {
		return errChanType
	}
	cmd.channel = ch.str()
	switch cmd.op {
	case opPublish:
		if !data.present {
			return errMissingData
		}
		cmd.data = data.val
	case opSubscribe:
		if since.present {
			v, ok := parseID(*since)
			if !ok || v > history.MaxOffset {
				return errSinceType
			}
			cmd.since, cmd.hasSince = v, true
		}
		if e := &fs.epoch; e.present {
			if e.kind != kindString {
				return errEpochType
			}
			cmd.epoch, cmd.hasEpoch = e.str(), true
		}
	}
	return nil
}

// parseID accepts a JSON integer without sign, fraction or exponent that fits
// in a uint64.
func parseID(f rawField) (uint64, bool) {
	if f.kind != kindNumber {
		return 0, false
	}
	var v uint64
	for _, c := range f.val {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// unescape decodes a JSON string (quotes included) that contains escapes.
// The scanner has validated it, so decoding cannot fail.
func unescape(quoted []byte) []byte {
	var s string
	_ = json.Unmarshal(quoted, &s)
	return []byte(s)
}

// malformed reports a JSON syntax error with its position.
func malformed(off int, what string) *Error {
	return &Error{400, "malformed JSON at byte " + strconv.Itoa(off) + ": " + what}
}

// truncate shortens s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
