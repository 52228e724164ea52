package access

// MaxChannel is the longest channel name (PROTOCOL.md: "1 to 255 bytes").
const MaxChannel = 255

// InvalidChannelByte returns the index of the first byte that makes name an
// invalid channel name, or -1 when every byte is allowed. Allowed: A-Z a-z
// 0-9 _ - . : @ / = anywhere, and for a user-limited channel
// (`dm:#alice,bob`) one '#' and, after it, ',' between users. Length is
// checked apart (MaxChannel).
func InvalidChannelByte[T string | []byte](name T) int {
	hash := -1 // where a user-limited channel's '#' is
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case channelByte[c]:
		case c == '#' && hash < 0:
			hash = i
		case c == ',' && hash >= 0:
		default:
			return i
		}
	}
	return -1
}

// ValidChannel reports whether name is a valid channel name.
func ValidChannel(name string) bool {
	return name != "" && len(name) <= MaxChannel && InvalidChannelByte(name) < 0
}

// channelByte marks the bytes allowed anywhere in a channel name.
var channelByte = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.:@/=") {
		t[c] = true
	}
	return t
}()

// Match reports whether channel is allowed by pattern, a valid entry of a
// token's "channels" claim (see ValidPattern):
//
//   - "*" matches every channel;
//   - "prefix:*" matches every channel that starts with "prefix:" and has at
//     least one more byte, at any depth ("room:*" matches "room:a" and
//     "room:a:b", not "room" nor "rooms:1");
//   - anything else matches only the channel of that exact name.
//
// It does not allocate: the hub calls it on every subscribe and publish.
func Match(pattern, channel string) bool {
	if pattern == "*" {
		return true
	}
	if prefix, ok := patternPrefix(pattern); ok {
		return len(channel) > len(prefix) && channel[:len(prefix)] == prefix
	}
	return pattern == channel
}

// ValidPattern reports whether p may appear in a token's "channels" claim:
// "*", "prefix:*" where "prefix:" is a valid channel name of at most 254
// bytes with a non-empty prefix, or a valid channel name.
func ValidPattern(p string) bool {
	if p == "*" {
		return true
	}
	if prefix, ok := patternPrefix(p); ok {
		// prefix keeps its ':'; something must stand before it, and a
		// matching channel (prefix plus at least one byte) must still fit.
		return len(prefix) >= 2 && len(prefix) < MaxChannel && ValidChannel(prefix)
	}
	return ValidChannel(p)
}

// patternPrefix returns "prefix:" for a pattern "prefix:*".
func patternPrefix(p string) (string, bool) {
	n := len(p)
	if n >= 2 && p[n-1] == '*' && p[n-2] == ':' {
		return p[:n-1], true
	}
	return "", false
}

// MatchAny reports whether any of patterns matches channel.
func MatchAny(patterns []string, channel string) bool {
	for _, p := range patterns {
		if Match(p, channel) {
			return true
		}
	}
	return false
}
