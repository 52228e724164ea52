package loadtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/klauspost/compress/flate"
)

// deflateMsg compresses msg as a permessage-deflate sender does: raw
// deflate, sync flush, the 00 00 ff ff tail stripped.
func deflateMsg(t testing.TB, msg []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(msg)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// One inflater serves message after message (no context taken over), small
// and large, and allocates nothing once its buffer has grown.
func TestInflater(t *testing.T) {
	var z inflater
	msgs := [][]byte{
		[]byte(`{"op":"message","channel":"c","data":{"seq":1}}`),
		bytes.Repeat([]byte(`{"op":"message","channel":"c","data":{"seq":2}},`), 5000),
		{},
		[]byte(strings.Repeat("x", 70000)),
	}
	for i, m := range msgs {
		got, err := z.inflate(deflateMsg(t, m))
		if err != nil || !bytes.Equal(got, m) {
			t.Fatalf("message %d: %d bytes, %v; want %d bytes", i, len(got), err, len(m))
		}
	}
	if _, err := z.inflate([]byte{0xff, 0xff, 0xff}); err == nil {
		t.Fatal("corrupt data inflated")
	}
	small := deflateMsg(t, msgs[0])
	if _, err := z.inflate(small); err != nil {
		t.Fatalf("after corrupt data: %v", err)
	}
	if a := testing.AllocsPerRun(100, func() { z.inflate(small) }); a != 0 {
		t.Fatalf("%v allocations per remembered inflate", a)
	}
	// Fresh inflates too, once the memo's buffers have grown.
	others := make([][]byte, 2*16) // twice the default memo
	for i := range others {
		others[i] = deflateMsg(t, fmt.Appendf(nil, `{"op":"message","channel":"c","data":{"seq":%d}}`, i))
	}
	i := 0
	next := func() { z.inflate(others[i%len(others)]); i++ }
	for range 2 * len(others) {
		next()
	}
	fresh := z.Fresh
	if a := testing.AllocsPerRun(100, next); a != 0 {
		t.Fatalf("%v allocations per fresh inflate", a)
	}
	if z.Fresh-fresh < 100 {
		t.Fatalf("%d of 101 inflates were fresh: the memo answered for different messages", z.Fresh-fresh)
	}
}

// The memo answers for a compressed message only when its bytes are the
// same, never for another one of the same length; and it does not keep a
// message whose bytes do not inflate.
func TestInflaterMemo(t *testing.T) {
	var z inflater
	a := deflateMsg(t, []byte(`{"op":"message","channel":"c","data":{"seq":1}}`))
	b := deflateMsg(t, []byte(`{"op":"message","channel":"c","data":{"seq":2}}`))
	if len(a) != len(b) {
		t.Skipf("want two compressed messages of one length, got %d and %d", len(a), len(b))
	}
	for range 3 {
		for _, m := range []struct {
			z    []byte
			want string
		}{{a, `"seq":1`}, {b, `"seq":2`}} {
			got, err := z.inflate(m.z)
			if err != nil || !bytes.Contains(got, []byte(m.want)) {
				t.Fatalf("%s: %q, %v", m.want, got, err)
			}
		}
	}
	if z.Fresh != 2 || z.Hits != 4 {
		t.Fatalf("fresh %d hits %d, want 2 and 4", z.Fresh, z.Hits)
	}
	bad := []byte{0xff, 0xff, 0xff}
	for range 2 {
		if _, err := z.inflate(bad); err == nil {
			t.Fatal("corrupt data inflated")
		}
	}
	if z.Hits != 4 {
		t.Fatal("a corrupt message was remembered")
	}
}

// A message inflating past the limit is refused, not grown into.
func TestInflaterCap(t *testing.T) {
	var z inflater
	if _, err := z.inflate(deflateMsg(t, make([]byte, maxServerMessage+1))); err != errInflatedTooLarge {
		t.Fatalf("%v, want errInflatedTooLarge", err)
	}
}

func TestUpgradeResponseExtensions(t *testing.T) {
	key := []byte("dGhlIHNhbXBsZSBub25jZQ==")
	accept := acceptFor(key)
	resp := func(ext string) []byte {
		s := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + string(accept) + "\r\n"
		if ext != "" {
			s += "Sec-WebSocket-Extensions: " + ext + "\r\n"
		}
		return []byte(s + "\r\n")
	}
	for _, tc := range []struct {
		ext            string
		offered, ok, z bool
	}{
		{"", false, true, false},
		{"", true, true, false},
		{"permessage-deflate; server_no_context_takeover; client_no_context_takeover", true, true, true},
		{"permessage-deflate", true, true, true},
		{"permessage-deflate", false, false, false},                           // not offered
		{"permessage-deflate; server_max_window_bits=10", true, false, false}, // not offered either
		{"x-webkit-deflate-frame", true, false, false},                        // another extension
		{"permessage-deflate, permessage-deflate", true, false, false},        // twice
	} {
		n, z, err := parseUpgradeResponse(resp(tc.ext), accept, tc.offered)
		if (err == nil) != tc.ok || z != tc.z || (tc.ok && n == 0) {
			t.Errorf("%q offered=%v: n=%d deflate=%v err=%v", tc.ext, tc.offered, n, z, err)
		}
	}
	req := string(appendUpgradeRequest(nil, "h", "/ws", key, nil, false, true))
	if !strings.Contains(req, "\r\nSec-WebSocket-Extensions: "+deflateOffer+"\r\n") {
		t.Fatalf("no offer in %q", req)
	}
	var f serverFrame
	if n, err := parseServerFrame([]byte{0xC1, 1, 'x'}, &f); n != 3 || err != nil || !f.rsv1 {
		t.Fatalf("RSV1 frame: %d %v %+v", n, err, f)
	}
}

// Text padding keeps the payload valid JSON of the asked size, differs from
// message to message, and deflates about as JSON feed data does (2.5-4x),
// where a run of x would make compression look far better than it is.
func TestTextPadding(t *testing.T) {
	pad := textPadding(2*1000 + 4096)
	a := appendPayload(nil, 1, 1732000000123456789, 1000, pad)
	b := appendPayload(nil, 2, 1732000000123456789, 1000, pad)
	for _, p := range [][]byte{a, b} {
		if len(p) != 1000 || !json.Valid(p) {
			t.Fatalf("%d bytes, valid JSON %v: %s", len(p), json.Valid(p), p)
		}
		if _, _, ok := parsePayload(p); !ok {
			t.Fatalf("does not parse: %s", p)
		}
	}
	if bytes.Equal(a[30:], b[30:]) {
		t.Fatal("two messages padded alike")
	}
	ratio := float64(len(a)) / float64(len(deflateMsg(t, a)))
	t.Logf("1000-byte text-padded payload deflates %.2fx; x-padded %.1fx", ratio,
		1000/float64(len(deflateMsg(t, appendPayload(nil, 1, 1732000000123456789, 1000, nil)))))
	if ratio < 2.5 || ratio > 4 {
		t.Fatalf("deflates %.2fx, want JSON-like 2.5-4x", ratio)
	}
}
