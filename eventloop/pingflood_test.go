package eventloop

import (
	"fmt"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wshub/wshub/wsproto/wstest"
)

// A client that packs thousands of pings into one write gets a pong for the
// most recent one only (RFC 6455 §5.5.3), not one write(2) per ping, and the
// message that follows them is still answered.
func TestPingFloodAnsweredOnce(t *testing.T) {
	const pings = 5000
	s := startServer(t, Config{Loops: 1, PingInterval: -1}, newTestHandler())
	c := dialWS(t, s, "/ws")
	var in []byte
	for i := range pings {
		in = append(in, wstest.Frame(ws.OpPing, true, true, fmt.Appendf(nil, "p%04d", i))...)
	}
	in = append(in, wstest.Frame(ws.OpText, true, true, []byte("after"))...)
	c.Write(in)

	pongs, last := 0, ""
	for {
		f, err := c.ReadFrame(5 * time.Second)
		if err != nil {
			t.Fatalf("after %d pongs: %v", pongs, err)
		}
		if f.Header.OpCode == ws.OpPong {
			pongs++
			last = string(f.Payload)
			continue
		}
		if f.Header.OpCode != ws.OpText || string(f.Payload) != "after" {
			t.Fatalf("frame %v %q, want the text reply", f.Header.OpCode, f.Payload)
		}
		break
	}
	// One pong per read of the server's: the 55 KB may arrive in a few.
	if pongs == 0 || pongs > 8 {
		t.Fatalf("%d pongs for %d pings in one write, want 1 to 8", pongs, pings)
	}
	if want := fmt.Sprintf("p%04d", pings-1); last != want {
		t.Fatalf("last pong carries %q, want the last ping's %q", last, want)
	}
}
