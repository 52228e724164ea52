package main

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wshub/wshub/redis/redistest"
	"github.com/wshub/wshub/wsproto/wstest"
)

// Hostile compressed input against the real gateway: messages that inflate
// far past --max-message (deflate bombs), invalid deflate data and RSV bits
// where RFC 7692 does not allow them. The deflated input is made with the
// standard library's compress/flate, independently of the gateway's
// inflater (klauspost/compress).

// offerDeflate is the offer Chromium, ws and websockets send.
const offerDeflate = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"

// acceptedDeflate is the gateway's answer to it.
const acceptedDeflate = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// deflateMsg is s as a permessage-deflate client sends it: raw DEFLATE
// ending in a sync flush whose 00 00 ff ff is removed (RFC 7692 §7.2.1).
func deflateMsg(s []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	w.Write(s)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// zeroBomb is a deflated message of mib MiB of zeros, made without holding
// them: 1 MiB of zeros deflates to about 1 KB ending in a sync flush (so
// byte-aligned, and back-references stay inside it), and mib copies of it
// are one valid stream. DEFLATE cannot do much better: a length-258 match
// costs at least 2 bits, so no deflate stream inflates more than 1032
// times its size, and 1 GiB needs about 1 MB on the wire.
func zeroBomb(mib int) []byte {
	var chunk bytes.Buffer
	w, _ := flate.NewWriter(&chunk, flate.BestCompression)
	w.Write(make([]byte, 1<<20))
	w.Flush()
	return bytes.TrimSuffix(bytes.Repeat(chunk.Bytes(), mib), []byte{0, 0, 0xff, 0xff})
}

// inflateFrame is what a compressed server frame's payload inflates to.
func inflateFrame(t *testing.T, p []byte) []byte {
	t.Helper()
	r := flate.NewReader(io.MultiReader(bytes.NewReader(p), strings.NewReader("\x00\x00\xff\xff\x01\x00\x00\xff\xff")))
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("compressed frame from the gateway does not inflate: %v", err)
	}
	return out
}

// rsv1 sets RSV1 (the permessage-deflate bit) on an encoded frame.
func rsv1(frame []byte) []byte {
	frame[0] |= 0x40
	return frame
}

// dialDeflate upgrades on /ws with extra header lines and returns the
// client and the 101's Sec-WebSocket-Extensions.
func dialDeflate(t *testing.T, addr string, extra ...string) (*client, string) {
	t.Helper()
	cl := dialRaw(t, addr)
	cl.Write([]byte(wstest.UpgradeRequest(addr, "/ws", extra...)))
	resp := cl.ReadResponse()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: status %d", resp.StatusCode)
	}
	return cl, resp.Header.Get("Sec-WebSocket-Extensions")
}

// deflateCanary is a compressed subscriber of channel that must be served
// throughout.
func deflateCanary(t *testing.T, g *gateway, channel string) *client {
	t.Helper()
	c, ext := dialDeflate(t, g.addr, offerDeflate)
	if ext != acceptedDeflate {
		t.Fatalf("canary: Sec-WebSocket-Extensions %q, want %q", ext, acceptedDeflate)
	}
	c.Write(rsv1(wstest.Frame(ws.OpText, true, true, deflateMsg([]byte(`{"op":"subscribe","channel":"`+channel+`","id":1}`)))))
	if m := c.next(); m["op"] != "ok" {
		t.Fatalf("canary subscribe: %v", m)
	}
	return c
}

// checkServing has the canary publish a compressed message on its channel
// and get it back compressed, byte for byte, as a later client does.
func checkServing(t *testing.T, g *gateway, canary *client, channel string) {
	t.Helper()
	data := `{"after":"the bombs","pad":"` + strings.Repeat("still serving ", 40) + `"}`
	want := `{"op":"message","channel":"` + channel + `","data":` + data + `}`
	later, _ := dialDeflate(t, g.addr, offerDeflate)
	later.sendText(`{"op":"subscribe","channel":"` + channel + `","id":1}`)
	if m := later.next(); m["op"] != "ok" {
		t.Fatalf("a client after the bombs: subscribe %v", m)
	}
	canary.Write(rsv1(wstest.Frame(ws.OpText, true, true, deflateMsg([]byte(`{"op":"publish","channel":"`+channel+`","data":`+data+`,"id":2}`)))))
	for _, c := range []*client{canary, later} {
		for got := 0; got < 1; {
			f := c.NextFrame()
			p := f.Payload
			if f.Header.Rsv&0x4 != 0 {
				p = inflateFrame(t, p)
			}
			if bytes.Contains(p, []byte(`"op":"ok"`)) {
				continue
			}
			if f.Header.Rsv != ws.Rsv(true, false, false) || string(p) != want {
				t.Fatalf("after the bombs: got RSV %03b %.200q, want the compressed publication %.200q", f.Header.Rsv, p, want)
			}
			got++
		}
	}
}

// TestDeflateBombs: with the default --max-message (64 KiB), a 1 KB frame
// that inflates to 1 MiB and a 64 KB one that inflates to 63 MiB are closed
// with 1009, several at once; invalid deflate data is 1007; RSV bits where
// RFC 7692 does not allow them are 1002, with or without negotiation; and
// the gateway serves its other clients throughout.
func TestDeflateBombs(t *testing.T) {
	g := startGateway(t, "--compression")
	canary := deflateCanary(t, g, "bombs")

	small := zeroBomb(1)  // 1 KB -> 1 MiB
	large := zeroBomb(63) // 64 KB -> 63 MiB, just under the limit on the wire
	if len(small) > 1100 || len(large) >= 64<<10 {
		t.Fatalf("bombs of %d and %d bytes", len(small), len(large))
	}
	p := deflateMsg([]byte(strings.Repeat(`{"op":"publish","channel":"bombs","data":"x"}`, 60)))
	// A client that kept its window (context takeover) against what was
	// negotiated: its second message, the same ping, is one back-reference
	// into the first, which the gateway has forgotten. The first is
	// answered.
	text := []byte(`{"op":"ping","id":7,"pad":"` + strings.Repeat("context ", 30) + `"}`)
	var ctx bytes.Buffer
	w, _ := flate.NewWriter(&ctx, flate.BestCompression)
	w.Write(text)
	w.Flush()
	first := bytes.Clone(bytes.TrimSuffix(ctx.Bytes(), []byte{0, 0, 0xff, 0xff})) // ctx is reused
	ctx.Reset()
	w.Write(text)
	w.Flush()
	second := bytes.TrimSuffix(ctx.Bytes(), []byte{0, 0, 0xff, 0xff})
	if len(second) > 16 {
		t.Fatalf("the second message deflated to %d bytes: not a back-reference", len(second))
	}

	cases := []struct {
		name   string
		offer  bool
		frames [][]byte
		code   uint16
		before string // the reply expected before the close, if any
	}{
		{"1 KB inflating to 1 MiB", true, [][]byte{rsv1(wstest.Frame(ws.OpBinary, true, true, small))}, 1009, ""},
		{"64 KB inflating to 63 MiB", true, [][]byte{rsv1(wstest.Frame(ws.OpText, true, true, large))}, 1009, ""},
		{"63 MiB in 63 fragments", true, fragments(large, 63), 1009, ""},
		{"corrupt deflate data", true, [][]byte{rsv1(wstest.Frame(ws.OpText, true, true, []byte{0xff, 0xff, 0xff, 0xff}))}, 1007, ""},
		{"truncated deflate stream", true, [][]byte{rsv1(wstest.Frame(ws.OpText, true, true, p[:len(p)/2]))}, 1007, ""},
		{"back-reference into the previous message", true, [][]byte{
			rsv1(wstest.Frame(ws.OpText, true, true, first)), rsv1(wstest.Frame(ws.OpText, true, true, second)),
		}, 1007, `{"op":"pong","id":7}`},
		{"not UTF-8 once inflated", true, [][]byte{rsv1(wstest.Frame(ws.OpText, true, true, deflateMsg([]byte("h\xffllo"))))}, 1007, ""},
		{"RSV1 on a continuation frame", true, [][]byte{
			rsv1(wstest.Frame(ws.OpText, false, true, p[:10])), rsv1(wstest.Frame(ws.OpContinuation, true, true, p[10:])),
		}, 1002, ""},
		{"RSV1 on a ping", true, [][]byte{rsv1(wstest.Frame(ws.OpPing, true, true, []byte("z")))}, 1002, ""},
		{"RSV2", true, [][]byte{func() []byte { f := wstest.Frame(ws.OpText, true, true, []byte("{}")); f[0] |= 0x20; return f }()}, 1002, ""},
		{"RSV1 without negotiation", false, [][]byte{rsv1(wstest.Frame(ws.OpText, true, true, p))}, 1002, ""},
	}
	// Every case on its own connection, all at once: the bombs inflate side
	// by side on the gateway's loops.
	peak := watchPeak(t, g)
	start := time.Now()
	var wg sync.WaitGroup
	took := make([]time.Duration, len(cases))
	for i, tc := range cases {
		var extra []string
		if tc.offer {
			extra = append(extra, offerDeflate)
		}
		c, ext := dialDeflate(t, g.addr, extra...)
		if (ext != "") != tc.offer {
			t.Fatalf("%s: Sec-WebSocket-Extensions %q", tc.name, ext)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			c.Write(bytes.Join(tc.frames, nil))
			f, err := c.ReadFrame(5 * time.Second)
			if tc.before != "" && err == nil {
				if f.Header.OpCode != ws.OpText || string(f.Payload) != tc.before {
					t.Errorf("%s: %v %.100q before the close, want %s", tc.name, f.Header.OpCode, f.Payload, tc.before)
				}
				f, err = c.ReadFrame(5 * time.Second)
			}
			took[i] = time.Since(t0)
			switch {
			case err != nil:
				t.Errorf("%s: %v, want close %d", tc.name, err, tc.code)
			case f.Header.OpCode != ws.OpClose || len(f.Payload) < 2:
				t.Errorf("%s: %v %.100q, want close %d", tc.name, f.Header.OpCode, f.Payload, tc.code)
			case binary.BigEndian.Uint16(f.Payload) != tc.code:
				t.Errorf("%s: close %d %q, want %d", tc.name, binary.BigEndian.Uint16(f.Payload), f.Payload[2:], tc.code)
			default:
				// Answered, as a client does: the gateway then closes at once.
				c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
				c.Conn.Write(wstest.Frame(ws.OpClose, true, true, f.Payload[:2]))
				c.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.Copy(io.Discard, c.Reader); err != nil {
					t.Errorf("%s: the gateway did not close the connection after its close frame: %v", tc.name, err)
				}
				c.Conn.Close()
			}
		}()
	}
	wg.Wait()
	all := time.Since(start)
	for i, tc := range cases {
		t.Logf("%-45s close %d after %v", tc.name, tc.code, took[i].Round(10*time.Microsecond))
	}
	grown := peak()
	t.Logf("%d cases at once in %v, 127 MiB of bombs among them", len(cases), all.Round(time.Millisecond))
	// Inflating the bombs would cost 127 MiB; the gateway pays at most the
	// limit per message (64 KiB, under twice that while its buffer
	// doubles), plus the frames on the wire.
	if grown > 8<<10 {
		t.Errorf("peak RSS grew by %d KiB", grown)
	}
	checkServing(t, g, canary, "bombs")
	redistest.Eventually(t, 5*time.Second, func() bool {
		v, _ := g.metricSum("wshub_eventloop_connections")
		return v == 2
	}, "the closed connections gone (the canary and the later client left)")
}

// fragments splits a deflated message into n frames, RSV1 on the first only.
func fragments(p []byte, n int) [][]byte {
	var out [][]byte
	size := (len(p) + n - 1) / n
	for i := 0; i < len(p); i += size {
		end := min(i+size, len(p))
		op := ws.OpContinuation
		if i == 0 {
			op = ws.OpText
		}
		f := wstest.Frame(op, end == len(p), true, p[i:end])
		if i == 0 {
			rsv1(f)
		}
		out = append(out, f)
	}
	return out
}

// TestDeflateBombGiB: frames of 1 MB that inflate to 1 GiB each, sent on
// several connections at once with --max-message 2MiB, are each closed with
// 1009 within milliseconds, and the gateway's peak RSS grows by tens of
// MiB, never by what they inflate to.
func TestDeflateBombGiB(t *testing.T) {
	const (
		maxMessage = 2 << 20
		bombs      = 6
	)
	g := startGateway(t, "--compression", "--max-message", fmt.Sprint(maxMessage))
	canary := deflateCanary(t, g, "gib")
	bomb := zeroBomb(1024)
	frame := rsv1(wstest.Frame(ws.OpBinary, true, true, bomb))
	conns := make([]*client, bombs)
	for i := range conns {
		conns[i], _ = dialDeflate(t, g.addr, offerDeflate)
	}
	peak := watchPeak(t, g)
	start := time.Now()
	var wg sync.WaitGroup
	took := make([]time.Duration, bombs)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			c.Write(frame)
			f, err := c.ReadFrame(10 * time.Second)
			took[i] = time.Since(t0)
			if err != nil || f.Header.OpCode != ws.OpClose || len(f.Payload) < 2 || binary.BigEndian.Uint16(f.Payload) != 1009 {
				t.Errorf("bomb %d: %v %v %.100q, want close 1009", i, err, f.Header.OpCode, f.Payload)
			}
		}()
	}
	wg.Wait()
	all := time.Since(start)
	grown := peak()
	t.Logf("%d frames of %d bytes, 1 GiB inflated each, --max-message %d KiB: closed 1009 after %v (all in %v)",
		bombs, len(frame), maxMessage>>10, took, all.Round(time.Millisecond))
	// Each bomb holds its 1 MB frame in the gateway's input buffer and
	// inflates into at most the limit (buffers of 4 KiB to 2 MiB, doubling:
	// under 4 MiB allocated), and the garbage collector lets the heap reach
	// about twice what is live: 6 GiB inflated cost a few MiB per bomb.
	if bound := (bombs*(len(frame)+2*maxMessage) + 8<<20) >> 10; grown > bound {
		t.Errorf("peak RSS grew by %d KiB, bound %d KiB", grown, bound)
	}
	if all > 5*time.Second {
		t.Errorf("%d bombs took %v", bombs, all)
	}
	checkServing(t, g, canary, "gib")
}

// watchPeak starts watching the gateway's resident set: the returned
// function reports by how much its peak passed the RSS of now, and logs
// both. The kernel's peak mark (VmHWM) is reset first, so that it reads the
// peak from now on; where it cannot be, it bounds that peak from above all
// the same.
func watchPeak(t *testing.T, g *gateway) func() int {
	t.Helper()
	procDir := fmt.Sprintf("/proc/%d/", g.cmd.Process.Pid)
	reset := os.WriteFile(procDir+"clear_refs", []byte("5"), 0) == nil
	before := g.rssKiB()
	return func() int {
		t.Helper()
		after, peak := g.rssKiB(), vmHWM(t, procDir+"status")
		t.Logf("gateway RSS %d KiB before, peak %d KiB (%+d KiB), after %d KiB (%+d KiB); peak mark reset: %v",
			before, peak, peak-before, after, after-before, reset)
		return peak - before
	}
}

// vmHWM reads a process's peak resident set (VmHWM) from its status file.
func vmHWM(t *testing.T, status string) int {
	t.Helper()
	b, err := os.ReadFile(status)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestDeflateOffByDefault: without --compression the gateway ignores an
// offer, and RSV1 is then a protocol error (RFC 6455 §5.2: no extension
// gave it a meaning).
func TestDeflateOffByDefault(t *testing.T) {
	g := startGateway(t)
	c, ext := dialDeflate(t, g.addr, offerDeflate)
	if ext != "" {
		t.Fatalf("Sec-WebSocket-Extensions %q without --compression", ext)
	}
	c.Write(rsv1(wstest.Frame(ws.OpText, true, true, deflateMsg([]byte(`{"op":"ping","id":1}`)))))
	c.expectClose(1002)
}
