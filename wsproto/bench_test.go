package wsproto

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// BenchmarkHandshake parses a browser-like upgrade request.
func BenchmarkHandshake(b *testing.B) {
	req := []byte(request("GET /ws?token=eyJhbGciOiJIUzI1NiJ9.e30.x HTTP/1.1",
		"Host: gateway.example.com:8080",
		"Connection: Upgrade",
		"Pragma: no-cache",
		"Cache-Control: no-cache",
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
		"Upgrade: websocket",
		"Origin: https://app.example.com",
		"Sec-WebSocket-Version: 13",
		"Accept-Encoding: gzip, deflate, br",
		"Accept-Language: en-US,en;q=0.9",
		"Sec-WebSocket-Key: "+rfcKey,
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
		"Sec-WebSocket-Protocol: wshub.v1"))
	cfg := &HandshakeConfig{Paths: []string{"/ws"}}
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	for b.Loop() {
		if hs := ParseHandshake(req, cfg); hs.Status != HandshakeDone {
			b.Fatal(hs.Reason)
		}
	}
}

// BenchmarkDecodeFrame decodes one masked, unfragmented text frame. Next
// unmasks in place, so each run flips the payload between two texts; the mask
// only flips low bits, so both stay ASCII and valid.
func BenchmarkDecodeFrame(b *testing.B) {
	for _, size := range []int{16, 4096} {
		b.Run(map[int]string{16: "small", 4096: "4KiB"}[size], func(b *testing.B) {
			var w bytes.Buffer
			payload := []byte(strings.Repeat("abcdefgh", size/8))
			ws.WriteFrame(&w, ws.MaskFrameWith(ws.NewTextFrame(payload), [4]byte{1, 2, 3, 4}))
			buf := w.Bytes()
			var d Decoder
			d.Init(0)
			b.ReportAllocs()
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				ev, n, err := d.Next(buf)
				if err != nil || n != len(buf) || ev.Kind != EventText {
					b.Fatal(err, n)
				}
			}
		})
	}
}

// BenchmarkBuildFrame encodes a hub message straight into a pooled frame.
func BenchmarkBuildFrame(b *testing.B) {
	payload := []byte(`{"op":"message","channel":"room:42","data":{"text":"hello, world"}}`)
	b.ReportAllocs()
	for b.Loop() {
		f, p := BuildFrame(ws.OpText, len(payload))
		copy(p, payload)
		f.Release()
	}
}

// BenchmarkHandshakeTrickle parses one upgrade request (about 300 bytes, and
// about 6 KiB with a large Cookie header) as it arrives: whole (one
// HandshakeCursor.Parse call with the complete request), cursor-1byte (a
// cursor called once per added byte, as for a request trickled one byte per
// TCP segment) and stateless-1byte (ParseHandshake called once per added
// byte: work quadratic in the request's size). One op is one handshake.
func BenchmarkHandshakeTrickle(b *testing.B) {
	cfg := &HandshakeConfig{Paths: []string{"/ws"}}
	modes := []struct {
		name  string
		parse func(req []byte) Handshake
	}{
		{"whole", func(req []byte) Handshake {
			var c HandshakeCursor
			return c.Parse(req, cfg)
		}},
		{"cursor-1byte", func(req []byte) (hs Handshake) {
			var c HandshakeCursor
			for n := 1; n <= len(req); n++ {
				hs = c.Parse(req[:n], cfg)
			}
			return hs
		}},
		{"stateless-1byte", func(req []byte) (hs Handshake) {
			for n := 1; n <= len(req); n++ {
				hs = ParseHandshake(req[:n], cfg)
			}
			return hs
		}},
	}
	reqs := [][]byte{trickleRequest(0), trickleRequest(6 << 10)}
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			for _, req := range reqs {
				b.Run(strconv.Itoa(len(req))+"B", func(b *testing.B) {
					b.ReportAllocs()
					b.SetBytes(int64(len(req)))
					for b.Loop() {
						if hs := m.parse(req); hs.Status != HandshakeDone || hs.Consumed != len(req) {
							b.Fatalf("%+v", hs)
						}
					}
				})
			}
		})
	}
}
