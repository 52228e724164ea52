package hub

import (
	"strconv"
	"unicode/utf8"

	"github.com/wshub/wshub/hub/access"
)

// Error is a failed client command or API call: Code is the PROTOCOL.md error
// code (400, 404, 413, 422, 503 ...) and Message says what was wrong.
type Error struct {
	Code    int
	Message string
}

// Error returns the code and message, e.g. "422 channel name is empty".
func (e *Error) Error() string { return strconv.Itoa(e.Code) + " " + e.Message }

// Unwrap makes a 503 match ErrUnavailable with errors.Is.
func (e *Error) Unwrap() error {
	if e.Code == 503 {
		return ErrUnavailable
	}
	return nil
}

// errorCodes lists the codes counted by the errors metric, in index order.
var errorCodes = [...]int{400, 403, 404, 413, 422, 429, 503}

// numCodes is the number of error counter slots: errorCodes plus "other".
const numCodes = len(errorCodes) + 1

// codeIndex maps a code to its counter slot (the last one for other codes).
func codeIndex(code int) int {
	for i, c := range errorCodes {
		if c == code {
			return i
		}
	}
	return len(errorCodes)
}

var (
	errNotSubscribed = &Error{404, "not subscribed to this channel"}
	errTooManyDups   = &Error{429, "too many repeated subscribes of this channel waiting for the broker (limit " + strconv.Itoa(maxDups) + ")"}
	errUnavailable   = &Error{503, "broker unavailable, retry later"}
	errTimeout       = &Error{503, "broker did not confirm in time, retry later"}
)

// validChannel checks a channel name: 1 to 255 bytes of A-Z a-z 0-9 _ - . : @ / =.
func validChannel[T string | []byte](name T) *Error {
	if len(name) == 0 {
		return errEmptyChan
	}
	if len(name) > access.MaxChannel {
		return errLongChan
	}
	if i := access.InvalidChannelByte(name); i >= 0 {
		return &Error{422, "channel name has invalid character " + quoteCharAt(string(name), i) + " at byte " + strconv.Itoa(i)}
	}
	return nil
}

// quoteCharAt quotes the character starting at name[i] for an error message.
func quoteCharAt(name string, i int) string {
	r, n := utf8.DecodeRuneInString(name[i:])
	if r == utf8.RuneError && n <= 1 {
		return strconv.Quote(name[i : i+1])
	}
	return strconv.QuoteRune(r)
}
