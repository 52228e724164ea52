package hub

import "encoding/binary"

// A small JSON scanner: it validates values without building them, so that a
// command's fields can be located as byte ranges of the message and `data`
// can be forwarded byte for byte. It follows RFC 8259 exactly except that it
// does not check UTF-8 (WebSocket text messages are already validated; the
// HTTP API checks it separately).

// maxDepth bounds nesting so that hostile input cannot exhaust the stack.
const maxDepth = 256

// jsonKind is the type of a scanned JSON value.
type jsonKind uint8

const (
	kindInvalid jsonKind = iota
	kindObject
	kindArray
	kindString
	kindNumber
	kindBool
	kindNull
)

// syntaxError describes malformed JSON: what was wrong and where.
type syntaxError struct {
	msg string
	off int
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// scanValue validates the value starting at b[i] (no leading whitespace) and
// returns its kind and the offset just past it.
func scanValue(b []byte, i, depth int) (jsonKind, int, *syntaxError) {
	if i >= len(b) {
		return kindInvalid, i, &syntaxError{"unexpected end of input", i}
	}
	switch c := b[i]; {
	case c == '{':
		end, err := scanObject(b, i, depth+1)
		return kindObject, end, err
	case c == '[':
		end, err := scanArray(b, i, depth+1)
		return kindArray, end, err
	case c == '"':
		end, _, err := scanString(b, i)
		return kindString, end, err
	case c == '-' || (c >= '0' && c <= '9'):
		end, err := scanNumber(b, i)
		return kindNumber, end, err
	case c == 't':
		return kindBool, i + 4, scanLiteral(b, i, "true")
	case c == 'f':
		return kindBool, i + 5, scanLiteral(b, i, "false")
	case c == 'n':
		return kindNull, i + 4, scanLiteral(b, i, "null")
	}
	return kindInvalid, i, &syntaxError{"unexpected character", i}
}

func scanLiteral(b []byte, i int, lit string) *syntaxError {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return &syntaxError{"invalid literal", i}
	}
	return nil
}

// scanString validates the string starting at the quote b[i]. It returns the
// offset past the closing quote and whether the string contains escapes (its
// raw bytes then differ from its value).
func scanString(b []byte, i int) (int, bool, *syntaxError) {
	escaped := false
	for j := i + 1; j < len(b); j++ {
		for j+8 <= len(b) && !specialIn8(binary.LittleEndian.Uint64(b[j:])) {
			j += 8 // eight ordinary bytes at a time
		}
		for j < len(b) && !strSpecial[b[j]] {
			j++
		}
		if j >= len(b) {
			break
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, escaped, nil
		case c == '\\':
			escaped = true
			j++
			if j >= len(b) {
				return j, escaped, &syntaxError{"unterminated string", i}
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-j < 5 || !isHex(b[j+1]) || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) {
					return j, escaped, &syntaxError{"invalid \\u escape", j - 1}
				}
				j += 4
			default:
				return j, escaped, &syntaxError{"invalid escape", j - 1}
			}
		default: // c < 0x20
			return j, escaped, &syntaxError{"control character in string", j}
		}
	}
	return len(b), escaped, &syntaxError{"unterminated string", i}
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// specialIn8 reports whether any of 8 bytes may be a quote, a backslash or a
// control character (false positives are possible, negatives are not).
func specialIn8(x uint64) bool {
	ctl := (x - 0x20*ones) & ^x & highs
	q := x ^ ('"' * ones)
	bs := x ^ ('\\' * ones)
	return ctl|((q-ones)&^q&highs)|((bs-ones)&^bs&highs) != 0
}

// strSpecial marks the bytes that end the fast path inside a string.
var strSpecial = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return
}()

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanNumber validates -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func scanNumber(b []byte, i int) (int, *syntaxError) {
	start := i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return i, &syntaxError{"invalid number", start}
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return i, &syntaxError{"invalid number", start}
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return i, &syntaxError{"invalid number", start}
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, nil
}

func scanArray(b []byte, i, depth int) (int, *syntaxError) {
	if depth > maxDepth {
		return i, &syntaxError{"nested too deeply", i}
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		_, end, err := scanValue(b, i, depth)
		if err != nil {
			return end, err
		}
		i = skipSpace(b, end)
		if i >= len(b) {
			return i, &syntaxError{"unexpected end of input", i}
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return i, &syntaxError{"expected ',' or ']'", i}
		}
	}
}

// scanObject validates the object starting at b[i].
func scanObject(b []byte, i, depth int) (int, *syntaxError) {
	if depth > maxDepth {
		return i, &syntaxError{"nested too deeply", i}
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, &syntaxError{"expected a string key", i}
		}
		kend, _, err := scanString(b, i)
		if err != nil {
			return kend, err
		}
		i = skipSpace(b, kend)
		if i >= len(b) || b[i] != ':' {
			return i, &syntaxError{"expected ':' after key", i}
		}
		i = skipSpace(b, i+1)
		_, vend, err := scanValue(b, i, depth)
		if err != nil {
			return vend, err
		}
		i = skipSpace(b, vend)
		if i >= len(b) {
			return i, &syntaxError{"unexpected end of input", i}
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return i, &syntaxError{"expected ',' or '}'", i}
		}
	}
}

// validJSON reports whether b is exactly one JSON value, optionally surrounded
// by whitespace.
func validJSON(b []byte) bool {
	i := skipSpace(b, 0)
	_, end, err := scanValue(b, i, 0)
	return err == nil && skipSpace(b, end) == len(b)
}
