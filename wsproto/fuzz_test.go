package wsproto

import (
	"bytes"
	"strings"
	"testing"
)

// fuzzHandshakeConfig has small caps so the fuzzer reaches them.
var fuzzHandshakeConfig = HandshakeConfig{
	MaxRequestBytes: 1024,
	MaxHeaders:      16,
	Paths:           []string{"/ws", "/echo"},
	CheckOrigin:     func(o string) bool { return o != "https://evil.example" },
	Compression:     true,
}

// FuzzHandshake checks that ParseHandshake never panics, decides the same way
// whatever the chunking, stays within its caps, and only produces legal
// results; and that a HandshakeCursor fed the input in chunks returns exactly
// what ParseHandshake returns on the bytes received so far, at every chunk
// (so NeedMore on the same prefixes, and the same final outcome).
func FuzzHandshake(f *testing.F) {
	for _, tc := range handshakeCases() {
		f.Add([]byte(tc.req+tc.trailer), uint64(1))
	}
	f.Add([]byte(request("GET /ws HTTP/1.1", with("Sec-WebSocket-Protocol: a, wshub.v1", "Origin: x")...)), uint64(9))
	for _, tc := range negotiateCases() {
		f.Add(extensionsRequest(tc.lines), uint64(len(tc.lines)))
	}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		cfg := &fuzzHandshakeConfig
		hs := ParseHandshake(data, cfg)
		if hs.Consumed < 0 || hs.Consumed > len(data) || hs.Consumed > cfg.MaxRequestBytes {
			t.Fatalf("Consumed %d of %d", hs.Consumed, len(data))
		}
		switch hs.Status {
		case HandshakeNeedMore:
			if len(data) >= cfg.MaxRequestBytes {
				t.Fatalf("NeedMore with %d bytes, cap %d", len(data), cfg.MaxRequestBytes)
			}
		case HandshakeDone:
			if hs.Code != 101 || !bytes.HasPrefix(hs.Response, []byte("HTTP/1.1 101 Switching Protocols\r\n")) ||
				data[hs.Consumed-1] != '\n' || (hs.Path != "/ws" && hs.Path != "/echo") {
				t.Fatalf("bad Done: %+v", hs)
			}
			// An extension is answered only when offered, and at most once.
			if ext, n := extensionsAnswer(hs.Response); n > 1 || hs.Deflate != (n == 1) || hs.Compressed && !hs.Deflate ||
				hs.Deflate && (!strings.HasPrefix(ext, deflateResponse) || !bytes.Contains(data[:hs.Consumed], []byte("permessage-deflate"))) {
				t.Fatalf("bad extension answer %q: %+v", ext, hs)
			}
			// The request alone decides the same way: nothing after it counts.
			if again := ParseHandshake(data[:hs.Consumed], cfg); !sameHandshake(again, hs) {
				t.Fatalf("request alone gives %+v", again)
			}
		case HandshakeReject:
			switch hs.Code {
			case 400, 403, 404, 426, 431:
			default:
				t.Fatalf("illegal status %d", hs.Code)
			}
			checkRejectResponse(t, hs)
		default:
			t.Fatalf("status %d", hs.Status)
		}
		for _, ch := range []chunker{randomChunks(seed), byteByByte} {
			if got := feedHandshake(data, cfg, ch); !sameHandshake(got, hs) {
				t.Fatalf("chunked: %+v\nwhole: %+v", got, hs)
			}
		}
		for _, ch := range []chunker{randomChunks(seed), byteByByte} {
			if got, _ := feedCursor(data, cfg, ch, t.Fatalf); !sameHandshake(got, hs) {
				t.Fatalf("cursor: %+v\nwhole: %+v", got, hs)
			}
		}
	})
}

// FuzzFrames checks that Decoder never panics, gives the same events whatever
// the chunking, keeps payloads within the limit (inflated ones included)
// and its allocations within a few times the limit whatever the input, and
// fails only with 1002, 1007 or 1009 (decode checks those invariants). The
// seeds include compressed messages, whole and fragmented, deflate bombs
// and corrupt streams.
func FuzzFrames(f *testing.F) {
	for _, tc := range decodeCases() {
		f.Add(tc.input, uint16(tc.max), tc.compress, uint64(1))
	}
	f.Add(wire(frag(1, "a\xc3"), ping(""), cont("\xa9", true), closeF(1000, "")), uint16(16), false, uint64(2))
	f.Add(wire(bin(strings.Repeat("b", 300)), frag(2, "x"), cont("y", false)), uint16(400), true, uint64(3))
	f.Add(wire(compressed(1, lorem), compressedFrags(2, lorem, 4)[0], ping("p"), compressedFrags(2, lorem, 4)[1], closeF(1000, "")), uint16(2000), true, uint64(4))
	f.Add(wire(compressed(2, strings.Repeat("z", 1<<20)), text("after")), uint16(65535), true, uint64(5))
	f.Add(wire(compressedFrags(1, strings.Repeat("é", 3000), 5)...), uint16(8000), true, uint64(6))
	f.Fuzz(func(t *testing.T, data []byte, max uint16, compress bool, seed uint64) {
		want := decode(data, int(max), compress, whole, t.Fatalf)
		for _, ch := range []chunker{randomChunks(seed), byteByByte} {
			got := decode(data, int(max), compress, ch, t.Fatalf)
			if !sameOutcome(got, want) {
				t.Fatalf("chunked: %v err %d left %d\nwhole: %v err %d left %d",
					got.events, got.errCode, got.leftover, want.events, want.errCode, want.leftover)
			}
		}
	})
}
