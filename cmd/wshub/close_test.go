package main

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

func TestCloseCodesForBadInput(t *testing.T) {
	g := startGateway(t, "--max-message", "1024")
	big := bytes.Repeat([]byte("a"), 2000)
	cases := []struct {
		name string
		in   []byte
		code ws.StatusCode
	}{
		{"unmasked frame", frame(ws.OpText, true, false, []byte(`{"op":"ping"}`)), 1002},
		{"reserved opcode", frame(ws.OpCode(0x3), true, true, []byte("x")), 1002},
		{"fragmented control frame", frame(ws.OpPing, false, true, []byte("x")), 1002},
		{"oversize control frame", frame(ws.OpPing, true, true, bytes.Repeat([]byte("p"), 126)), 1002},
		{"RSV bit without extension", append([]byte{0x80 | 0x40 | byte(ws.OpText)}, frame(ws.OpText, true, true, []byte("x"))[1:]...), 1002},
		{"continuation without start", frame(ws.OpContinuation, true, true, []byte("x")), 1002},
		{"binary message", frame(ws.OpBinary, true, true, []byte{1, 2, 3}), 1003},
		{"invalid UTF-8", frame(ws.OpText, true, true, []byte{'{', 0xff, 0xfe, '}'}), 1007},
		{"invalid UTF-8 across fragments", append(frame(ws.OpText, false, true, []byte{'"', 0xe2, 0x82}), frame(ws.OpContinuation, true, true, []byte{'('})...), 1007},
		{"oversize message", frame(ws.OpText, true, true, big), 1009},
		// The peer is still sending when the gateway gives up: the close
		// frame must reach it anyway (no reset from unread input).
		{"oversize message still arriving", frame(ws.OpText, true, true, bytes.Repeat([]byte("a"), 4<<20)), 1009},
		{"oversize fragmented message", append(frame(ws.OpText, false, true, big[:900]), frame(ws.OpContinuation, true, true, big[:900])...), 1009},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, g.addr)
			c.write(tc.in)
			c.expectClose(tc.code)
		})
	}
	// The gateway still serves others afterwards.
	c := dial(t, g.addr)
	c.sendText(`{"op":"ping","id":1}`)
	if m := c.next(); m["op"] != "pong" {
		t.Fatalf("after bad clients: %v", m)
	}
}

func TestFragmentedCommandAndControlFrames(t *testing.T) {
	g := startGateway(t)
	c := dial(t, g.addr)
	cmd := []byte(`{"op":"ping","id":9}`)
	var in []byte
	in = append(in, frame(ws.OpText, false, true, cmd[:5])...)
	in = append(in, frame(ws.OpPing, true, true, []byte("mid"))...)
	in = append(in, frame(ws.OpContinuation, false, true, cmd[5:12])...)
	in = append(in, frame(ws.OpContinuation, true, true, cmd[12:])...)
	// One byte at a time: the gateway must cope with every partial read.
	for i := range in {
		c.write(in[i : i+1])
	}
	f, err := c.readFrame(5 * time.Second)
	if err != nil || f.Header.OpCode != ws.OpPong || string(f.Payload) != "mid" {
		t.Fatalf("pong for the interleaved ping: %v %v %q", err, f.Header.OpCode, f.Payload)
	}
	if m := c.next(); m["op"] != "pong" || m["id"] != 9.0 {
		t.Fatalf("reassembled command reply %v", m)
	}
	// A close from the client is echoed with its code.
	c.write(frame(ws.OpClose, true, true, ws.NewCloseFrameBody(1000, "bye")))
	c.expectClose(1000)
}

func TestWebSocketPingPongSamePayload(t *testing.T) {
	g := startGateway(t)
	c := dial(t, g.addr)
	c.write(frame(ws.OpPing, true, true, []byte("are you there?")))
	f, err := c.readFrame(5 * time.Second)
	if err != nil || f.Header.OpCode != ws.OpPong || string(f.Payload) != "are you there?" {
		t.Fatalf("pong: %v %v %q", err, f.Header.OpCode, f.Payload)
	}
}

func TestHandshakeRejections(t *testing.T) {
	g := startGateway(t, "--origins", "https://good.example")
	cases := []struct {
		name, req string
		code      int
	}{
		{"wrong path", upgradeRequest(g.addr, "/nope"), 404},
		{"echo off by default", upgradeRequest(g.addr, "/echo"), 404},
		{"not an upgrade", "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"wrong version", strings.Replace(upgradeRequest(g.addr, "/ws"), "Version: 13", "Version: 8", 1), 426},
		{"bad key", strings.Replace(upgradeRequest(g.addr, "/ws"), testKey, "short", 1), 400},
		{"origin not allowed", upgradeRequest(g.addr, "/ws", "Origin: https://evil.example"), 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, g.addr)
			c.write([]byte(tc.req))
			resp := c.readResponse()
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.code)
			}
			if tc.code == 426 && resp.Header.Get("Sec-WebSocket-Version") != "13" {
				t.Fatalf("426 without Sec-WebSocket-Version: %v", resp.Header)
			}
			c.expectEOF(3 * time.Second)
		})
	}
	// An allowed origin upgrades.
	dialPath(t, g.addr, "/ws", "Origin: https://good.example")
	// The subprotocol is echoed when offered.
	raw := dialRaw(t, g.addr)
	raw.write([]byte(upgradeRequest(g.addr, "/ws", "Sec-WebSocket-Protocol: wshub.v1")))
	if resp := raw.readResponse(); resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Protocol") != "wshub.v1" {
		t.Fatalf("subprotocol: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestEchoEndpoint(t *testing.T) {
	g := startGateway(t, "--echo")
	c := dialPath(t, g.addr, "/echo")
	c.write(frame(ws.OpBinary, true, true, []byte{0, 1, 2, 255}))
	f, err := c.readFrame(5 * time.Second)
	if err != nil || f.Header.OpCode != ws.OpBinary || !bytes.Equal(f.Payload, []byte{0, 1, 2, 255}) {
		t.Fatalf("binary echo: %v %v %v", err, f.Header.OpCode, f.Payload)
	}
	c.write(append(frame(ws.OpText, false, true, []byte("hel")), frame(ws.OpContinuation, true, true, []byte("lo ✓"))...))
	f, err = c.readFrame(5 * time.Second)
	if err != nil || f.Header.OpCode != ws.OpText || string(f.Payload) != "hello ✓" {
		t.Fatalf("text echo: %v %v %q", err, f.Header.OpCode, f.Payload)
	}
}
