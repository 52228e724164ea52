package wsproto

import (
	"net/http"
	"strings"
	"testing"
)

// deflateResponse is the extension line of an accepted offer.
const deflateResponse = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

type negotiateCase struct {
	name  string
	lines []string // Sec-WebSocket-Extensions values, one header line each
	// want is the Sec-WebSocket-Extensions answer ("" = none); reject means
	// a 400 "extensions" instead.
	want       string
	compressed bool // Handshake.Compressed (Deflate is want != "")
	reject     bool
}

func negotiateCases() []negotiateCase {
	acc := deflateResponse
	return []negotiateCase{
		{name: "no header", want: ""},
		{name: "bare offer", lines: []string{"permessage-deflate"}, want: acc, compressed: true},
		{name: "Chromium and Firefox", lines: []string{"permessage-deflate; client_max_window_bits"}, want: acc, compressed: true},
		{name: "gorilla", lines: []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover"}, want: acc, compressed: true},
		{name: "client window with a value is accepted, not answered", lines: []string{"permessage-deflate; client_max_window_bits=10"}, want: acc, compressed: true},
		{name: "client window 8", lines: []string{"permessage-deflate; client_max_window_bits=8"}, want: acc, compressed: true},
		{name: "server window 15 is echoed", lines: []string{"permessage-deflate; server_max_window_bits=15"}, want: acc + "; server_max_window_bits=15", compressed: true},
		{name: "smaller server window: accepted, sent plain", lines: []string{"permessage-deflate; server_max_window_bits=10"}, want: acc + "; server_max_window_bits=10"},
		{name: "server window 8", lines: []string{"permessage-deflate; server_max_window_bits=8"}, want: acc + "; server_max_window_bits=8"},
		{name: "quoted value", lines: []string{`permessage-deflate; server_max_window_bits="12"`}, want: acc + "; server_max_window_bits=12"},
		{name: "quoted-pair in a value", lines: []string{`permessage-deflate; server_max_window_bits="1\5"`}, want: acc + "; server_max_window_bits=15", compressed: true},
		{name: "whitespace around separators", lines: []string{"permessage-deflate ;client_max_window_bits = 9 ,\tfoo"}, want: acc, compressed: true},
		{name: "everything at once", lines: []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15; client_max_window_bits=15"}, want: acc + "; server_max_window_bits=15", compressed: true},

		// Offers declined (RFC 7692 §7): the next one is tried.
		{name: "server window 7 declined", lines: []string{"permessage-deflate; server_max_window_bits=7"}},
		{name: "server window 16 declined", lines: []string{"permessage-deflate; server_max_window_bits=16"}},
		{name: "leading zero declined", lines: []string{"permessage-deflate; server_max_window_bits=09"}},
		{name: "server window without a value declined", lines: []string{"permessage-deflate; server_max_window_bits"}},
		{name: "client window 16 declined", lines: []string{"permessage-deflate; client_max_window_bits=16"}},
		{name: "client window not a number declined", lines: []string{"permessage-deflate; client_max_window_bits=x"}},
		{name: "long quoted value declined", lines: []string{`permessage-deflate; client_max_window_bits="100000000000"`}},
		{name: "value on a flag declined", lines: []string{"permessage-deflate; server_no_context_takeover=1"}},
		{name: "value on the other flag declined", lines: []string{`permessage-deflate; client_no_context_takeover="x"`}},
		{name: "repeated parameter declined", lines: []string{"permessage-deflate; client_max_window_bits; client_max_window_bits=10"}},
		{name: "unknown parameter declined", lines: []string{"permessage-deflate; x_mode=fast"}},
		{name: "parameter names are exact", lines: []string{"permessage-deflate; Server_No_Context_Takeover"}},
		{name: "extension name is exact", lines: []string{"PerMessage-Deflate"}},
		{name: "other extensions only", lines: []string{"x-webkit-deflate-frame, foo; bar=baz"}},
		{name: "first acceptable offer wins", lines: []string{"permessage-deflate; server_max_window_bits=7, permessage-deflate; server_max_window_bits=12, permessage-deflate"}, want: acc + "; server_max_window_bits=12"},
		{name: "Autobahn 13.7 offers", lines: []string{"permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits, permessage-deflate; server_no_context_takeover; client_max_window_bits, permessage-deflate; client_max_window_bits"}, want: acc + "; server_max_window_bits=9"},
		{name: "after another extension", lines: []string{`x-webkit-deflate-frame; no_context_takeover, foo; bar="baz", permessage-deflate`}, want: acc, compressed: true},
		{name: "several lines are one list", lines: []string{"permessage-deflate; server_max_window_bits=99", "permessage-deflate; server_max_window_bits=11"}, want: acc + "; server_max_window_bits=11"},
		{name: "only the first line's offer counts", lines: []string{"permessage-deflate", "permessage-deflate; server_max_window_bits=9"}, want: acc, compressed: true},
		{name: "empty list elements skipped", lines: []string{", ,permessage-deflate,,"}, want: acc, compressed: true},
		{name: "empty value", lines: []string{""}},

		// Broken grammar (RFC 6455 §9.1): 400, even after an acceptable offer.
		{name: "trailing semicolon", lines: []string{"permessage-deflate;"}, reject: true},
		{name: "parameter without a name", lines: []string{"permessage-deflate; =10"}, reject: true},
		{name: "missing value", lines: []string{"permessage-deflate; client_max_window_bits="}, reject: true},
		{name: "missing semicolon", lines: []string{"permessage-deflate client_max_window_bits"}, reject: true},
		{name: "two equals signs", lines: []string{"permessage-deflate; a=b=c"}, reject: true},
		{name: "unterminated quoted string", lines: []string{`permessage-deflate; a="10`}, reject: true},
		{name: "quoted value not a token", lines: []string{`permessage-deflate; a="1 0"`}, reject: true},
		{name: "empty quoted value", lines: []string{`permessage-deflate; a=""`}, reject: true},
		{name: "escaped quote in a value", lines: []string{`permessage-deflate; a="\""`}, reject: true},
		{name: "quoted extension name", lines: []string{`"permessage-deflate"`}, reject: true},
		{name: "separator in a name", lines: []string{"permessage-deflate/1"}, reject: true},
		{name: "broken after an accepted offer", lines: []string{"permessage-deflate, foo;;"}, reject: true},
		{name: "broken second line", lines: []string{"permessage-deflate", "@"}, reject: true},
		{name: "non-ASCII", lines: []string{"permessage-deflate; a=\xc3\xa9"}, reject: true},
	}
}

// extensionsRequest is an upgrade carrying lines as Sec-WebSocket-Extensions.
func extensionsRequest(lines []string) []byte {
	hs := with()
	for _, l := range lines {
		hs = append(hs, "Sec-WebSocket-Extensions: "+l)
	}
	return []byte(request("GET /ws HTTP/1.1", hs...))
}

// extensionsAnswer returns the Sec-WebSocket-Extensions value of a 101 and
// how many such lines it has.
func extensionsAnswer(resp []byte) (string, int) {
	var val string
	n := 0
	for _, line := range strings.Split(string(resp), "\r\n") {
		if name, v, ok := strings.Cut(line, ": "); ok && http.CanonicalHeaderKey(name) == "Sec-Websocket-Extensions" {
			val, n = v, n+1
		}
	}
	return val, n
}

// TestNegotiateDeflate runs each offer with Compression on (the answer the
// case wants, whatever the chunking, a cursor included) and off (never an
// extension, never a refusal).
func TestNegotiateDeflate(t *testing.T) {
	on := HandshakeConfig{Paths: []string{"/ws"}, Compression: true}
	off := HandshakeConfig{Paths: []string{"/ws"}}
	for _, tc := range negotiateCases() {
		t.Run(tc.name, func(t *testing.T) {
			req := extensionsRequest(tc.lines)
			hs := ParseHandshake(req, &on)
			switch {
			case tc.reject:
				if hs.Status != HandshakeReject || hs.Code != 400 || hs.Reason != reasonExtensions {
					t.Fatalf("got %d %d %q, want a 400 %q", hs.Status, hs.Code, hs.Reason, reasonExtensions)
				}
				checkRejectResponse(t, hs)
			case hs.Status != HandshakeDone:
				t.Fatalf("got %d %d %q, want a 101", hs.Status, hs.Code, hs.Reason)
			default:
				got, n := extensionsAnswer(hs.Response)
				if got != tc.want || n > 1 {
					t.Errorf("answer %q (%d lines), want %q", got, n, tc.want)
				}
				if hs.Deflate != (tc.want != "") || hs.Compressed != tc.compressed {
					t.Errorf("Deflate %v Compressed %v, want %v %v", hs.Deflate, hs.Compressed, tc.want != "", tc.compressed)
				}
				if !strings.HasSuffix(string(hs.Response), "\r\n\r\n") || strings.Count(string(hs.Response), "\r\n\r\n") != 1 {
					t.Errorf("malformed response %q", hs.Response)
				}
			}
			for name, ch := range chunkers() {
				if got := feedHandshake(req, &on, ch); !sameHandshake(got, hs) {
					t.Errorf("%s: got %+v, whole input gave %+v", name, got, hs)
				}
				if got, _ := feedCursor(req, &on, ch, t.Fatalf); !sameHandshake(got, hs) {
					t.Errorf("cursor %s: got %+v, whole input gave %+v", name, got, hs)
				}
			}
			hs = ParseHandshake(req, &off)
			if _, n := extensionsAnswer(hs.Response); hs.Status != HandshakeDone || n != 0 || hs.Deflate || hs.Compressed {
				t.Errorf("without Compression: %+v", hs)
			}
		})
	}
}

// TestNegotiateAllocs: negotiating costs nothing beyond the one allocation
// of the response.
func TestNegotiateAllocs(t *testing.T) {
	req := extensionsRequest([]string{`foo; a="b", permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits; server_max_window_bits=15`})
	cfg := &HandshakeConfig{Compression: true}
	if hs := ParseHandshake(req, cfg); !hs.Deflate {
		t.Fatalf("not negotiated: %q", hs.Response)
	}
	if allocs := testing.AllocsPerRun(100, func() { ParseHandshake(req, cfg) }); allocs > 1 {
		t.Fatalf("%v allocations per handshake, want 1 (the response)", allocs)
	}
}
