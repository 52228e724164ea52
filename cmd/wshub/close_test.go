package main

import (
	"bytes"
	"github.com/wshub/wshub/wsproto/wstest"
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
		{"unmasked frame", wstest.Frame(ws.OpText, true, false, []byte(`{"op":"ping"}`)), 1002},
		{"reserved opcode", wstest.Frame(ws.OpCode(0x3), true, true, []byte("x")), 1002},
		{"fragmented control frame", wstest.Frame(ws.OpPing, false, true, []byte("x")), 1002},
		{"oversize control frame", wstest.Frame(ws.OpPing, true, true, bytes.Repeat([]byte("p"), 126)), 1002},
		{"RSV bit without extension", append([]byte{0x80 | 0x40 | byte(ws.OpText)}, wstest.Frame(ws.OpText, true, true, []byte("x"))[1:]...), 1002},
		{"continuation without start", wstest.Frame(ws.OpContinuation, true, true, []byte("x")), 1002},
		{"binary message", wstest.Frame(ws.OpBinary, true, true, []byte{1, 2, 3}), 1003},
		{"invalid UTF-8", wstest.Frame(ws.OpText, true, true, []byte{'{', 0xff, 0xfe, '}'}), 1007},
		{"invalid UTF-8 across fragments", append(wstest.Frame(ws.OpText, false, true, []byte{'"', 0xe2, 0x82}), wstest.Frame(ws.OpContinuation, true, true, []byte{'('})...), 1007},
		{"oversize message", wstest.Frame(ws.OpText, true, true, big), 1009},
		// The peer is still sending when the gateway gives up: the close
		// frame must reach it anyway (no reset from unread input).
		{"oversize message still arriving", wstest.Frame(ws.OpText, true, true, bytes.Repeat([]byte("a"), 4<<20)), 1009},
		{"oversize fragmented message", append(wstest.Frame(ws.OpText, false, true, big[:900]), wstest.Frame(ws.OpContinuation, true, true, big[:900])...), 1009},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, g.addr)
			c.Write(tc.in)
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
	in = append(in, wstest.Frame(ws.OpText, false, true, cmd[:5])...)
	in = append(in, wstest.Frame(ws.OpPing, true, true, []byte("mid"))...)
	in = append(in, wstest.Frame(ws.OpContinuation, false, true, cmd[5:12])...)
	in = append(in, wstest.Frame(ws.OpContinuation, true, true, cmd[12:])...)
	// One byte at a time: the gateway must cope with every partial read.
	for i := range in {
		c.Write(in[i : i+1])
	}
	f, err := c.ReadFrame(5 * time.Second)
	if err != nil || f.Header.OpCode != ws.OpPong || string(f.Payload) != "mid" {
		t.Fatalf("pong for the interleaved ping: %v %v %q", err, f.Header.OpCode, f.Payload)
	}
	if m := c.next(); m["op"] != "pong" || m["id"] != 9.0 {
		t.Fatalf("reassembled command reply %v", m)
	}
	// A close from the client is echoed with its code.
	c.Write(wstest.Frame(ws.OpClose, true, true, ws.NewCloseFrameBody(1000, "bye")))
	c.expectClose(1000)
}

func TestWebSocketPingPongSamePayload(t *testing.T) {
	g := startGateway(t)
	c := dial(t, g.addr)
	c.Write(wstest.Frame(ws.OpPing, true, true, []byte("are you there?")))
	f, err := c.ReadFrame(5 * time.Second)
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
		{"wrong path", wstest.UpgradeRequest(g.addr, "/nope"), 404},
		{"echo off by default", wstest.UpgradeRequest(g.addr, "/echo"), 404},
		{"not an upgrade", "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"wrong version", strings.Replace(wstest.UpgradeRequest(g.addr, "/ws"), "Version: 13", "Version: 8", 1), 426},
		{"bad key", strings.Replace(wstest.UpgradeRequest(g.addr, "/ws"), wstest.Key, "short", 1), 400},
		{"origin not allowed", wstest.UpgradeRequest(g.addr, "/ws", "Origin: https://evil.example"), 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, g.addr)
			c.Write([]byte(tc.req))
			c.ExpectRejected(tc.code)
		})
	}
	// An allowed origin upgrades.
	dialPath(t, g.addr, "/ws", "Origin: https://good.example")
	// The subprotocol is echoed when offered.
	raw := dialRaw(t, g.addr)
	raw.Write([]byte(wstest.UpgradeRequest(g.addr, "/ws", "Sec-WebSocket-Protocol: wshub.v1")))
	if resp := raw.ReadResponse(); resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Protocol") != "wshub.v1" {
		t.Fatalf("subprotocol: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestEchoEndpoint(t *testing.T) {
	g := startGateway(t, "--echo")
	c := dialPath(t, g.addr, "/echo")
	c.Write(wstest.Frame(ws.OpBinary, true, true, []byte{0, 1, 2, 255}))
	f, err := c.ReadFrame(5 * time.Second)
	if err != nil || f.Header.OpCode != ws.OpBinary || !bytes.Equal(f.Payload, []byte{0, 1, 2, 255}) {
		t.Fatalf("binary echo: %v %v %v", err, f.Header.OpCode, f.Payload)
	}
	c.Write(append(wstest.Frame(ws.OpText, false, true, []byte("hel")), wstest.Frame(ws.OpContinuation, true, true, []byte("lo ✓"))...))
	f, err = c.ReadFrame(5 * time.Second)
	if err != nil || f.Header.OpCode != ws.OpText || string(f.Payload) != "hello ✓" {
		t.Fatalf("text echo: %v %v %q", err, f.Header.OpCode, f.Payload)
	}
}
