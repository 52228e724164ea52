package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// client is a deliberately low-level WebSocket client: it can send exactly
// the bytes a test wants, including frames a real library would refuse to.
type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader

	lastID uint64           // ids used by call
	stash  []map[string]any // messages call read past while awaiting its reply
}

const testKey = "dGhlIHNhbXBsZSBub25jZQ=="

// upgradeRequest is a valid RFC 6455 upgrade for path.
func upgradeRequest(host, path string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", path, host, testKey)
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// dialRaw opens a TCP connection without upgrading.
func dialRaw(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, br: newReader(c)}
}

// dial upgrades on /ws and fails the test unless the gateway answers 101.
func dial(t *testing.T, addr string) *client {
	t.Helper()
	return dialPath(t, addr, "/ws")
}

func dialPath(t *testing.T, addr, path string, extra ...string) *client {
	t.Helper()
	cl := dialRaw(t, addr)
	cl.write([]byte(upgradeRequest(addr, path, extra...)))
	resp := cl.readResponse()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade %s: status %d", path, resp.StatusCode)
	}
	return cl
}

func (cl *client) readResponse() *http.Response {
	cl.t.Helper()
	cl.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		cl.t.Fatalf("reading HTTP response: %v", err)
	}
	return resp
}

func (cl *client) write(b []byte) {
	cl.t.Helper()
	cl.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := cl.c.Write(b); err != nil {
		cl.t.Fatalf("write: %v", err)
	}
}

// frame encodes one client frame; mask=false makes an illegal unmasked one.
func frame(op ws.OpCode, fin, mask bool, payload []byte) []byte {
	var b []byte
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	b = append(b, b0)
	mbit := byte(0)
	if mask {
		mbit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, mbit|byte(n))
	case n < 1<<16:
		b = append(b, mbit|126, byte(n>>8), byte(n))
	default:
		b = append(b, mbit|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	p := append([]byte(nil), payload...)
	if mask {
		key := [4]byte{0x12, 0x34, 0x56, 0x78}
		b = append(b, key[:]...)
		ws.Cipher(p, key, 0)
	}
	return append(b, p...)
}

func (cl *client) sendText(s string) {
	cl.t.Helper()
	cl.write(frame(ws.OpText, true, true, []byte(s)))
}

// send marshals v and sends it as one text message.
func (cl *client) send(v any) {
	cl.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		cl.t.Fatal(err)
	}
	cl.write(frame(ws.OpText, true, true, b))
}

// readFrame returns the next server frame; server frames must be unmasked.
func (cl *client) readFrame(timeout time.Duration) (ws.Frame, error) {
	cl.c.SetReadDeadline(time.Now().Add(timeout))
	f, err := ws.ReadFrame(cl.br)
	if err == nil && f.Header.Masked {
		return f, errors.New("server sent a masked frame")
	}
	return f, err
}

// next returns the next text message as a JSON object, skipping pings.
func (cl *client) next() map[string]any {
	cl.t.Helper()
	for {
		f, err := cl.readFrame(5 * time.Second)
		if err != nil {
			cl.t.Fatalf("reading frame: %v", err)
		}
		switch f.Header.OpCode {
		case ws.OpPing:
			continue
		case ws.OpText:
			var m map[string]any
			if err := json.Unmarshal(f.Payload, &m); err != nil {
				cl.t.Fatalf("server sent invalid JSON %q: %v", f.Payload, err)
			}
			return m
		default:
			cl.t.Fatalf("expected a text frame, got opcode %v payload %q", f.Header.OpCode, f.Payload)
		}
	}
}

// expectClose reads until a close frame and checks its code, then checks
// that the server closes the TCP connection.
func (cl *client) expectClose(code ws.StatusCode) {
	cl.t.Helper()
	for {
		f, err := cl.readFrame(5 * time.Second)
		if err != nil {
			cl.t.Fatalf("waiting for close %d: %v", code, err)
		}
		if f.Header.OpCode != ws.OpClose {
			continue
		}
		got, reason := ws.ParseCloseFrameData(f.Payload)
		if got != code {
			cl.t.Fatalf("close code %d (%q), want %d", got, reason, code)
		}
		// Answer as a well-behaved client does, so the server can close at once.
		cl.c.SetWriteDeadline(time.Now().Add(time.Second))
		cl.c.Write(frame(ws.OpClose, true, true, f.Payload))
		break
	}
	cl.expectEOF(5 * time.Second)
}

// expectEOF checks the server closed the TCP connection.
func (cl *client) expectEOF(within time.Duration) {
	cl.t.Helper()
	cl.c.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, cl.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		cl.t.Fatalf("server did not close the connection within %v", within)
	}
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
