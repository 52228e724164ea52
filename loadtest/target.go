package loadtest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// DefaultPath is the WebSocket path of a target that names none: the
// gateway and the reference hub both serve /ws.
const DefaultPath = "/ws"

// targetSyntax is the hint appended to a target that cannot be read at all.
const targetSyntax = "want ws://host[:port][/path][?query] or host:port"

// targetSpec is one --target or --publish-target, parsed.
type targetSpec struct {
	addr string // host:port to dial
	host string // Host header
	uri  string // request target of the upgrade: path, and "?query" if any
}

// parseTarget reads a target in either form:
//
//   - host:port, as wsload always took it; the path is defaultPath
//     (Config.Path, --path).
//   - ws://host[:port][/path][?query], as wscat, websocat and k6 take it:
//     port 80 when absent; the URL's path, or defaultPath when it has none
//     or just "/"; the query is sent in the upgrade request. Both go as
//     written, except for bytes a request line cannot carry, which are
//     percent-encoded.
//
// wss:// (wsload has no TLS), other schemes, user info and fragments are
// refused. The error names the input (its password masked), not the flag.
func parseTarget(s, defaultPath string) (targetSpec, error) {
	if defaultPath == "" {
		defaultPath = DefaultPath
	}
	if !strings.Contains(s, "://") {
		return parseHostPort(s, defaultPath)
	}
	fail := func(format string, a ...any) (targetSpec, error) {
		return targetSpec{}, fmt.Errorf("%q: %s", redactTarget(s), fmt.Sprintf(format, a...))
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fail("%v (%s)", err, targetSyntax)
	}
	switch u.Scheme {
	case "ws":
	case "wss":
		return fail("wss:// is not supported: wsload has no TLS (use ws:// or host:port)")
	default:
		return fail("scheme %q is not supported (%s)", u.Scheme, targetSyntax)
	}
	if u.User != nil {
		return fail("user info (user@ or user:password@) is not supported")
	}
	if strings.Contains(s, "#") {
		return fail("a fragment (#...) is not allowed in a WebSocket URL")
	}
	host, port := u.Host, "80"
	if u.Port() != "" || strings.HasSuffix(u.Host, ":") {
		h, p, err := net.SplitHostPort(u.Host)
		if err != nil {
			return fail("%s", addrReason(err))
		}
		host, port = h, p
		if err := checkPort(port); err != nil {
			return fail("%v", err)
		}
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if host == "" {
		return fail("no host (%s)", targetSyntax)
	}
	// The path as written (url.URL.EscapedPath would re-encode all of it
	// as soon as one byte needs encoding, turning %2F into /).
	rest := s[strings.Index(s, "://")+3:]
	uri := ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		uri, _, _ = strings.Cut(rest[i:], "?")
	}
	if uri == "" || uri == "/" {
		uri = defaultPath
	} else {
		uri = escapeURI(uri, "`{}")
	}
	if u.RawQuery != "" {
		sep := "?"
		if strings.Contains(uri, "?") { // --path carried a query of its own
			sep = "&"
		}
		uri += sep + escapeURI(u.RawQuery, "'")
	}
	return targetSpec{addr: net.JoinHostPort(host, port), host: u.Host, uri: uri}, nil
}

// parseHostPort reads the host:port form.
func parseHostPort(s, defaultPath string) (targetSpec, error) {
	fail := func(format string, a ...any) (targetSpec, error) {
		return targetSpec{}, fmt.Errorf("%q: %s", s, fmt.Sprintf(format, a...))
	}
	if strings.Contains(s, "/") {
		return fail("a path needs the URL form, ws://host:port/path")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fail("%s (%s)", addrReason(err), targetSyntax)
	}
	if err := checkPort(port); err != nil {
		return fail("%v", err)
	}
	if host == "" {
		return fail("no host (%s)", targetSyntax)
	}
	return targetSpec{addr: s, host: s, uri: defaultPath}, nil
}

func checkPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n <= 0 || n > 65535 || p[0] == '+' {
		return fmt.Errorf("bad port %q (want 1-65535)", p)
	}
	return nil
}

// addrReason is net.SplitHostPort's complaint without the address it
// repeats.
func addrReason(err error) string {
	var ae *net.AddrError
	if errors.As(err, &ae) {
		return ae.Err
	}
	return err.Error()
}

// redactTarget masks a password in s for error messages.
func redactTarget(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return s
}

// escapeURI percent-encodes the bytes of a raw path or query that an HTTP
// request line cannot carry (controls, space, non-ASCII), `"<>` and extra,
// as a browser would (WHATWG URL's path and special-query sets); anything
// else, existing escapes included, is sent as the user wrote it.
func escapeURI(s, extra string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '<' || c == '>' || strings.IndexByte(extra, c) >= 0 {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// checkPath vets Config.Path (--path): it goes into the request line as is.
func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("--path %q must start with /", p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("--path %q: byte %d (%q) cannot go into a request line; percent-encode it", p, i, c)
		}
	}
	return nil
}

// parseTargets parses one flag's list, naming the flag in errors.
func parseTargets(flag string, list []string, defaultPath string) ([]targetSpec, error) {
	out := make([]targetSpec, 0, len(list))
	for _, s := range list {
		t, err := parseTarget(s, defaultPath)
		if err != nil {
			return nil, fmt.Errorf("%s %v", flag, err)
		}
		out = append(out, t)
	}
	return out, nil
}
