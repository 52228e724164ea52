package access

import "strings"

// Match reports whether the channels-claim pattern matches channel: an exact
// name; `prefix:*`, every channel that starts with `prefix:` and has at
// least one more byte, at any depth (`room:*` matches `room:a` and
// `room:a:b`, not `room` nor `rooms:1`); or `*`, every channel.
func Match(pattern, channel string) bool {
	if pattern == "*" {
		return true
	}
	if prefix, ok := strings.CutSuffix(pattern, ":*"); ok {
		return len(channel) > len(prefix)+1 && channel[len(prefix)] == ':' && channel[:len(prefix)] == prefix
	}
	return pattern == channel
}

// ValidPattern reports whether p is a pattern Match understands: `*`,
// `prefix:*` with a non-empty prefix, or a name without '*'.
func ValidPattern(p string) bool {
	if p == "*" {
		return true
	}
	prefix, wild := strings.CutSuffix(p, ":*")
	if wild {
		return prefix != "" && !strings.Contains(prefix, "*")
	}
	return p != "" && !strings.Contains(p, "*")
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
