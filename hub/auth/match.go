package auth

// MaxChannelLen is the longest channel name the protocol allows (PROTOCOL.md:
// "1 to 255 bytes"); a pattern's prefix must leave room for one more byte.
const MaxChannelLen = 255

// Match reports whether channel is allowed by pattern, a valid entry of a
// token's "channels" claim (see ValidPattern):
//
//   - "*" matches every channel;
//   - "prefix:*" matches every channel that starts with "prefix:" and has at
//     least one more byte, at any depth ("room:*" matches "room:a" and
//     "room:a:b", not "room" nor "rooms:1");
//   - anything else matches only the channel of that exact name.
//
// It does not allocate, so the hub can call it on every subscribe and publish.
func Match(pattern, channel string) bool {
	if pattern == "*" {
		return true
	}
	if prefix, ok := patternPrefix(pattern); ok {
		return len(channel) > len(prefix) && channel[:len(prefix)] == prefix
	}
	return pattern == channel
}

// ValidPattern reports whether p may appear in a token's "channels" claim: "*",
// "prefix:*" where "prefix:" is a valid channel name of at most 254 bytes with
// a non-empty prefix, or a valid channel name (1 to 255 bytes of
// A-Z a-z 0-9 _ - . : @ / =, the protocol's rule).
func ValidPattern(p string) bool {
	if p == "*" {
		return true
	}
	if prefix, ok := patternPrefix(p); ok {
		// prefix keeps its ':'; something must stand before it, and a matching
		// channel (prefix plus at least one byte) must still fit the limit.
		return len(prefix) >= 2 && len(prefix) < MaxChannelLen && validName(prefix)
	}
	return len(p) <= MaxChannelLen && validName(p)
}

// patternPrefix returns "prefix:" for a pattern "prefix:*".
func patternPrefix(p string) (string, bool) {
	n := len(p)
	if n >= 2 && p[n-1] == '*' && p[n-2] == ':' {
		return p[:n-1], true
	}
	return "", false
}

// validName checks the bytes of a non-empty channel name. The table repeats
// the hub's rule (PROTOCOL.md, "Channel names") so that the hub can import this
// package without a cycle.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameByte[s[i]] {
			return false
		}
	}
	return true
}

// nameByte marks the bytes allowed in a channel name.
var nameByte = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.:@/=") {
		t[c] = true
	}
	return t
}()
