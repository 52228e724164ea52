package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wshub/wshub/wsproto/wstest"
)

// client is the raw test client shared with eventloop's tests (it can send
// exactly the bytes a test wants), plus the JSON commands of PROTOCOL.md.
type client struct {
	*wstest.Client
	lastID uint64           // ids used by call
	stash  []map[string]any // messages call read past while awaiting its reply
}

// dialRaw opens a TCP connection without upgrading.
func dialRaw(t *testing.T, addr string) *client { return &client{Client: wstest.Dial(t, addr)} }

// dial upgrades on /ws and fails the test unless the gateway answers 101.
func dial(t *testing.T, addr string) *client {
	t.Helper()
	return dialPath(t, addr, "/ws")
}

func dialPath(t *testing.T, addr, path string, extra ...string) *client {
	t.Helper()
	cl := dialRaw(t, addr)
	cl.Upgrade(path, extra...)
	return cl
}

func (cl *client) sendText(s string) {
	cl.T.Helper()
	cl.Write(wstest.Frame(ws.OpText, true, true, []byte(s)))
}

// send marshals v and sends it as one text message.
func (cl *client) send(v any) {
	cl.T.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		cl.T.Fatal(err)
	}
	cl.Write(wstest.Frame(ws.OpText, true, true, b))
}

// next returns the next text message as a JSON object, skipping pings.
func (cl *client) next() map[string]any {
	cl.T.Helper()
	for {
		f, err := cl.ReadFrame(5 * time.Second)
		if err != nil {
			cl.T.Fatalf("reading frame: %v", err)
		}
		switch f.Header.OpCode {
		case ws.OpPing:
			continue
		case ws.OpText:
			var m map[string]any
			if err := json.Unmarshal(f.Payload, &m); err != nil {
				cl.T.Fatalf("server sent invalid JSON %q: %v", f.Payload, err)
			}
			return m
		default:
			cl.T.Fatalf("expected a text frame, got opcode %v payload %q", f.Header.OpCode, f.Payload)
		}
	}
}

// expectClose reads up to a close frame with code, answers it as a
// well-behaved client does, and checks that the server then closes the TCP
// connection.
func (cl *client) expectClose(code ws.StatusCode) {
	cl.T.Helper()
	cl.ExpectClose(uint16(code), true)
	cl.ExpectEOF(5 * time.Second)
}
