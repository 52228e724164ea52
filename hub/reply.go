package hub

import (
	"strconv"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/wshub/wshub/hub/history"
	"github.com/wshub/wshub/wsproto"
)

// Replies are composed in a per-loop scratch buffer, then copied into a pooled
// frame: they are small and their length is only known once written.

// textFrame copies payload into a new text frame.
func textFrame(payload []byte) *wsproto.Frame {
	f, p := wsproto.BuildFrame(ws.OpText, len(payload))
	copy(p, payload)
	return f
}

// sendJSON sends payload to c as one text message.
func sendJSON(c Conn, payload []byte) bool {
	f := textFrame(payload)
	ok := c.Send(f)
	f.Release()
	return ok
}

func appendID(b []byte, hasID bool, id uint64) []byte {
	if hasID {
		b = append(b, `,"id":`...)
		b = strconv.AppendUint(b, id, 10)
	}
	return b
}

// appendOK writes {"op":"ok","id":N} and, for a subscribe with since,
// "recovered":false (there is no history to recover from yet).
func appendOK(b []byte, id uint64, unrecovered bool) []byte {
	b = append(b, `{"op":"ok"`...)
	b = appendID(b, true, id)
	if unrecovered {
		b = append(b, `,"recovered":false`...)
	}
	return append(b, '}')
}

// appendPublishOK writes a publish's ok, with the offset it got on a
// history channel (0: none).
func appendPublishOK(b []byte, id, offset uint64) []byte {
	if offset == 0 {
		return appendOK(b, id, false)
	}
	b = append(b, `{"op":"ok"`...)
	b = appendID(b, true, id)
	b = strconv.AppendUint(append(b, `,"offset":`...), offset, 10)
	return append(b, '}')
}

// appendStreamOK writes the ok of a history channel's subscribe: the
// stream's position and, when since was given, whether it recovered and
// how many publications follow as its replay.
func appendStreamOK(b []byte, id uint64, at history.Position, since, recovered bool, replayed int) []byte {
	b = append(b, `{"op":"ok"`...)
	b = appendID(b, true, id)
	b = append(b, `,"offset":`...)
	b = strconv.AppendUint(b, at.Offset, 10)
	b = append(b, `,"epoch":`...)
	b = appendJSONString(b, at.Epoch)
	if since {
		b = strconv.AppendBool(append(b, `,"recovered":`...), recovered)
		if recovered {
			b = strconv.AppendInt(append(b, `,"replayed":`...), int64(replayed), 10)
		}
	}
	return append(b, '}')
}

// appendError writes {"op":"error","id":N,"code":C,"message":"..."}.
func appendError(b []byte, hasID bool, id uint64, e *Error) []byte {
	b = append(b, `{"op":"error"`...)
	b = appendID(b, hasID, id)
	b = append(b, `,"code":`...)
	b = strconv.AppendInt(b, int64(e.Code), 10)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, e.Message)
	return append(b, '}')
}

func appendPong(b []byte, hasID bool, id uint64) []byte {
	b = append(b, `{"op":"pong"`...)
	b = appendID(b, hasID, id)
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}
