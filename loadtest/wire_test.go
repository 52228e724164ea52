package loadtest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
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
