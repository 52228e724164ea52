package loadtest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestParseReply(t *testing.T) {
	cases := []struct {
		in      string
		op      replyOp
		id      int64
		channel string
		data    string
	}{
		{`{"op":"ok","id":7}`, replyOK, 7, "", ""},
		{` { "id" : 3 , "op" : "error", "code":422, "message":"bad \"name\" {x}"}`, replyError, 3, "", ""},
		{`{"op":"message","channel":"a:b","offset":"12-0","data":{"s":1,"t":2,"p":"x\"}y","n":[1,{"q":"]"}]}}`, replyMessage, -1, "a:b",
			`{"s":1,"t":2,"p":"x\"}y","n":[1,{"q":"]"}]}`},
		{`{"op":"pong"}`, replyPong, -1, "", ""},
		{`{"op":"weird"}`, replyUnknown, -1, "", ""},
	}
	for _, c := range cases {
		var r reply
		if err := parseReply([]byte(c.in), &r); err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if r.op != c.op || r.id != c.id || string(r.channel) != c.channel || string(r.data) != c.data {
			t.Errorf("%s: got op %d id %d channel %q data %q", c.in, r.op, r.id, r.channel, r.data)
		}
	}
	var r reply
	if err := parseReply([]byte(`{"op":"ok","id":1,"offset":42,"epoch":"ab\"c","recovered":true,"replayed":25}`), &r); err != nil ||
		r.offset != 42 || string(r.epoch) != `ab\"c` || r.recovered != recTrue || r.replayed != 25 {
		t.Errorf("history ok: %+v %v", r, err)
	}
	if err := parseReply([]byte(`{"op":"ok","id":1,"recovered":false}`), &r); err != nil || r.recovered != recFalse || r.offset != -1 || r.replayed != -1 {
		t.Errorf("ok recovered:false without offset: %+v %v", r, err)
	}
	if err := parseReply([]byte(`{"op":"message","channel":"h:1","offset":18,"data":1}`), &r); err != nil || r.offset != 18 || r.recovered != recNone {
		t.Errorf("message with offset: %+v %v", r, err)
	}
	for _, bad := range []string{``, `[]`, `{"op":"ok"`, `{"op" "ok"}`, `{"op":}`, `{"p":"unterminated}`} {
		var r reply
		if parseReply([]byte(bad), &r) == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func TestPayloadRoundTripAndSize(t *testing.T) {
	for _, size := range []int{0, 10, 64, 200, 1000} {
		p := appendPayload(nil, 123456, 1732000000123456789, size, nil)
		if size > 60 && len(p) != size {
			t.Errorf("size %d: payload is %d bytes", size, len(p))
		}
		s, ts, ok := parsePayload(p)
		if !ok || s != 123456 || ts != 1732000000123456789 {
			t.Errorf("size %d: parsed %d %d %v from %s", size, s, ts, ok, p)
		}
	}
	if _, _, ok := parsePayload([]byte(`{"text":"hi"}`)); ok {
		t.Error("foreign payload accepted")
	}
}

// TestReceivePathAllocatesNothing: parsing a delivery and accounting it
// must not allocate, or the generator would cost more than the gateway.
func TestReceivePathAllocatesNothing(t *testing.T) {
	if cmd := appendPublishCmd(nil, []byte("wsload.x.3"), 5, 99, 200, nil, 1); !json.Valid(cmd) {
		t.Fatalf("publish command is not JSON: %s", cmd)
	}
	msg := append([]byte(`{"op":"message","channel":"wsload.x.3","data":`), appendPayload(nil, 5, 99, 200, nil)...)
	msg = append(msg, '}')
	var tr tracker
	seq := int64(0)
	h := NewHistogram()
	allocs := testing.AllocsPerRun(1000, func() {
		var r reply
		if parseReply(msg, &r) != nil || r.op != replyMessage {
			t.Fatal("parse")
		}
		s, ts, ok := parsePayload(r.data)
		if !ok {
			t.Fatal("payload")
		}
		seq++
		tr.add(seq + s - 5)
		h.Record(ts)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per delivery", allocs)
	}
}

func TestServerFramesIncrementally(t *testing.T) {
	// Three frames: a short text, a 300-byte binary (16-bit length), a close.
	var in []byte
	in = append(in, 0x81, 5)
	in = append(in, "hello"...)
	in = append(in, 0x82, 126, 0x01, 0x2C)
	in = append(in, bytes.Repeat([]byte{7}, 300)...)
	in = append(in, 0x88, 2, 0x03, 0xE8)
	for chunk := 1; chunk <= len(in); chunk++ {
		var buf []byte
		var got []string
		for off := 0; off < len(in); off += chunk {
			buf = append(buf, in[off:min(off+chunk, len(in))]...)
			for {
				var f serverFrame
				n, err := parseServerFrame(buf, &f)
				if err != nil {
					t.Fatalf("chunk %d: %v", chunk, err)
				}
				if n == 0 {
					break
				}
				got = append(got, string(rune('0'+f.op))+":"+string(rune('0'+len(f.payload)%10)))
				buf = buf[n:]
			}
		}
		if len(got) != 3 || got[0] != "1:5" || got[1] != "2:0" || got[2] != "8:2" || len(buf) != 0 {
			t.Fatalf("chunk %d: frames %v, %d bytes left", chunk, got, len(buf))
		}
	}
	bad := map[string][]byte{
		"masked":   {0x81, 0x85, 1, 2, 3, 4, 'h', 'e', 'l', 'l', 'o'},
		"rsv2":     {0xA1, 0},
		"rsv3":     {0x91, 0},
		"opcode":   {0x83, 0},
		"ctrl-len": {0x89, 126, 0, 200},
		"ctrl-fin": {0x09, 0},
	}
	for name, b := range bad {
		var f serverFrame
		if _, err := parseServerFrame(b, &f); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestClientFrameMasking(t *testing.T) {
	payload := bytes.Repeat([]byte("abcdefghij"), 30) // 300 bytes: 16-bit length
	key := uint32(0xA1B2C3D4)
	f := appendClientFrame(nil, opText, payload, key)
	if f[0] != 0x81 || f[1] != 0x80|126 || binary.BigEndian.Uint16(f[2:]) != 300 || binary.BigEndian.Uint32(f[4:]) != key {
		t.Fatalf("header % x", f[:8])
	}
	body := bytes.Clone(f[8:])
	if bytes.Equal(body, payload) {
		t.Fatal("payload not masked")
	}
	maskBytes(body, key)
	if !bytes.Equal(body, payload) {
		t.Fatal("unmasking does not restore the payload")
	}
	// byte-wise reference: payload[i] ^ key[i%4]
	var k [4]byte
	binary.BigEndian.PutUint32(k[:], key)
	for i := range payload {
		if f[8+i] != payload[i]^k[i%4] {
			t.Fatalf("byte %d masked wrong", i)
		}
	}
}

func TestTracker(t *testing.T) {
	var tr tracker
	for _, s := range []int64{1, 2, 4, 3, 3, 5, 200, 6, 6, 150} {
		tr.add(s)
	}
	// The second 3 is a duplicate. After 200 both 6s are further behind
	// than the window, so they count as reordered (and unique), as does
	// 150: reordered 3, 6, 6, 150; unique 1,2,4,3,5,200,6,6,150.
	if tr.unique != 9 || tr.dups != 1 || tr.reordered != 4 {
		t.Fatalf("unique %d dups %d reordered %d", tr.unique, tr.dups, tr.reordered)
	}
	if tr.add(0) || tr.add(-3) {
		t.Fatal("impossible sequences accepted")
	}
}

// TestUpgradeResponseRefusalStatus: a well-formed refusal carries its HTTP
// status, so that 401 and 429 are counted as what they are; a malformed or
// unverifiable response carries none.
func TestUpgradeResponseRefusalStatus(t *testing.T) {
	key := []byte("dGhlIHNhbXBsZSBub25jZQ==")
	accept := acceptFor(key)
	for _, c := range []struct {
		resp   string
		status int
	}{
		{"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", 401},
		{"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n\r\n", 429},
		{"HTTP/1.0 404\r\n\r\n", 404},
		{"HTTP/1.1 40 Short\r\n\r\n", 0},
		{"HTTP/1.1 +01 Sign\r\n\r\n", 0},
		{"HTTP/1.1 abc Words\r\n\r\n", 0},
		{"SSH-2.0-OpenSSH_9.6\r\n\r\n", 0},
		{"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: wrong\r\n\r\n", 0},
	} {
		_, _, err := parseUpgradeResponse([]byte(c.resp), accept, false)
		he, ok := err.(*handshakeError)
		if !ok || he.status != c.status {
			t.Errorf("%q: error %v, want a handshakeError with status %d", c.resp, err, c.status)
		}
	}
	ok := "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: " + string(accept) + "\r\n\r\nrest"
	if n, _, err := parseUpgradeResponse([]byte(ok), accept, false); err != nil || n != len(ok)-len("rest") {
		t.Errorf("good 101: %d, %v", n, err)
	}
}

// TestUpgradeRequestPresentsToken: the token goes into the query, joining
// a query the target has with & (the gateway reads the first token=), or
// into Authorization: Bearer, and the request is otherwise the same.
func TestUpgradeRequestPresentsToken(t *testing.T) {
	const tok = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ3c2xvYWQtNyJ9.c2ln"
	tail := "Host: gw:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: a2V5\r\n"
	for _, c := range []struct {
		uri    string
		token  string
		bearer bool
		want   string
	}{
		{"/ws", "", false, "GET /ws HTTP/1.1\r\n" + tail + "Sec-WebSocket-Version: 13\r\n\r\n"},
		{"/ws", "", true, "GET /ws HTTP/1.1\r\n" + tail + "Sec-WebSocket-Version: 13\r\n\r\n"},
		{"/ws", tok, false, "GET /ws?token=" + tok + " HTTP/1.1\r\n" + tail + "Sec-WebSocket-Version: 13\r\n\r\n"},
		{"/gw/ws?tenant=t1&x=%2C", tok, false, "GET /gw/ws?tenant=t1&x=%2C&token=" + tok + " HTTP/1.1\r\n" + tail + "Sec-WebSocket-Version: 13\r\n\r\n"},
		{"/ws?tenant=t1", tok, true, "GET /ws?tenant=t1 HTTP/1.1\r\n" + tail + "Authorization: Bearer " + tok + "\r\nSec-WebSocket-Version: 13\r\n\r\n"},
	} {
		got := string(appendUpgradeRequest(nil, "gw:8080", c.uri, []byte("a2V5"), []byte(c.token), c.bearer, false))
		if got != c.want {
			t.Errorf("uri %q token %q bearer %v:\ngot  %q\nwant %q", c.uri, c.token, c.bearer, got, c.want)
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(got)))
		if err != nil {
			t.Errorf("%q does not parse: %v", got, err)
			continue
		}
		// What a server reads, by bearer: the query's token, the header's.
		read := map[bool]string{false: req.URL.Query().Get("token"), true: strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")}
		if read[c.bearer] != c.token || read[!c.bearer] != "" {
			t.Errorf("uri %q bearer %v: a server reads %q where the token should be, %q in the other place", c.uri, c.bearer, read[c.bearer], read[!c.bearer])
		}
	}
}

// TestSubscribeCommand: a first subscribe has no since; a reconnect's
// carries since and the epoch (raw, as the ok's JSON had it), and the
// frame's length covers both.
func TestSubscribeCommand(t *testing.T) {
	for _, c := range []struct {
		since int64
		epoch string
		want  string
	}{
		{-1, "", `{"op":"subscribe","channel":"hist:a.1","id":1}`},
		{0, "x", `{"op":"subscribe","channel":"hist:a.1","id":1,"since":0,"epoch":"x"}`},
		{5, "", `{"op":"subscribe","channel":"hist:a.1","id":1,"since":5}`},
		{17, `ab\"c`, `{"op":"subscribe","channel":"hist:a.1","id":1,"since":17,"epoch":"ab\"c"}`},
	} {
		key := uint32(0x01020304)
		f := appendSubscribe(nil, []byte("hist:a.1"), c.since, c.epoch, key)
		if int(f[1]&0x7f) != len(c.want) || len(f) != 6+len(c.want) {
			t.Errorf("since %d: length byte %d, frame %d bytes, for %d bytes of JSON", c.since, f[1]&0x7f, len(f), len(c.want))
			continue
		}
		body := bytes.Clone(f[6:])
		maskBytes(body, key)
		if string(body) != c.want {
			t.Errorf("got %s, want %s", body, c.want)
		}
	}
}
