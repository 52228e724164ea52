package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wshub/wshub/wsproto/wstest"
)

// TestCommandFloodIsLimited: a client flooding commands gets 429s and then
// close 1008 "rate limit", while another client on the same loop keeps
// being answered. The other client's ping round trips before and during the
// flood are logged (the figures in the note come from -v runs;
// timing is not asserted on a shared machine).
func TestCommandFloodIsLimited(t *testing.T) {
	file := filepath.Join(t.TempDir(), "wshub.yaml")
	os.WriteFile(file, []byte(`
limits:
  commands_per_s: 1000
  commands_burst: 1000
  max_rejections: 20000
  rejection_window: 10s
`), 0o600)
	g := startGateway(t, "--config", file, "--loops", "1")
	calm := dial(t, g.addr)
	rtt := func(n int) []time.Duration {
		out := make([]time.Duration, 0, n)
		for i := range n {
			start := time.Now()
			calm.sendText(fmt.Sprintf(`{"op":"ping","id":%d}`, i))
			if m := calm.next(); m["op"] != "pong" {
				t.Fatalf("calm client: %v", m)
			}
			out = append(out, time.Since(start))
			time.Sleep(2 * time.Millisecond) // a steady client, not a flood
		}
		return out
	}
	before := rtt(100) // the calm client stays far under its own 1000/s

	flood := dial(t, g.addr)
	ping := wstest.Frame(ws.OpText, true, true, []byte(`{"op":"ping","id":1}`))
	batch := bytes.Repeat(ping, 256)
	refused, closed := 0, make(chan uint16, 1)
	go func() {
		// The flooder reads what it is sent (429 errors), so it is limited,
		// not dropped as a slow consumer.
		for {
			f, err := flood.ReadFrame(10 * time.Second)
			if err != nil {
				t.Logf("flooder read: %v after %d refusals", err, refused)
				closed <- 0
				return
			}
			switch f.Header.OpCode {
			case ws.OpText:
				if bytes.Contains(f.Payload, []byte(`"code":429`)) {
					refused++
				}
			case ws.OpClose:
				closed <- binary.BigEndian.Uint16(f.Payload)
				return
			}
		}
	}()
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			flood.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := flood.Conn.Write(batch); err != nil {
				return
			}
		}
	}()
	during := rtt(100)
	var code uint16
	select {
	case code = <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("the flooding client was never closed")
	}
	close(stop)
	if code != 1008 {
		t.Fatalf("flooder closed with %d, want 1008", code)
	}
	if refused == 0 {
		t.Fatal("the flooder was closed without 429s first")
	}
	p99 := func(d []time.Duration) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[len(s)*99/100]
	}
	t.Logf("calm client ping p99: %v before the flood, %v during it; the flooder got %d refusals, then close %d",
		p99(before), p99(during), refused, code)
	// After the flood, the calm client is still served.
	rtt(1)
}
