package main

import (
	"fmt"
	"github.com/wshub/wshub/wsproto/wstest"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dialSmallBuffer upgrades with a tiny kernel receive buffer and then never
// reads: the textbook slow consumer.
func dialSmallBuffer(t *testing.T, addr string) *client {
	t.Helper()
	cl := &client{Client: wstest.DialWith(t, addr, net.Dialer{Timeout: 3 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
		})
	}})}
	cl.Upgrade("/ws")
	return cl
}

func TestSlowConsumerDroppedFastOneServed(t *testing.T) {
	g := startGateway(t, "--send-queue", "64", "--max-pending", "262144")
	slow := dialSmallBuffer(t, g.addr)
	slow.sendText(`{"op":"subscribe","channel":"firehose","id":1}`)
	if m := slow.next(); m["op"] != "ok" {
		t.Fatalf("slow subscribe %v", m)
	}
	fast := dial(t, g.addr)
	fast.sendText(`{"op":"subscribe","channel":"firehose","id":1}`)
	if m := fast.next(); m["op"] != "ok" {
		t.Fatalf("fast subscribe %v", m)
	}
	rssBefore := g.rssKiB()

	const msgs = 20000 // a multiple of the window below
	pad := strings.Repeat("x", 1000)
	got := make(chan int, 1)
	go func() {
		n := 0
		for n < msgs {
			f, err := fast.ReadFrame(10 * time.Second)
			if err != nil {
				t.Logf("fast subscriber: %v after %d messages", err, n)
				break
			}
			if strings.Contains(string(f.Payload), `"op":"message"`) {
				n++
			}
		}
		got <- n
	}()
	// The publisher keeps a window of 32 unacknowledged publications: fast,
	// but a burst never exceeds what a reading client's queue holds.
	pub := dial(t, g.addr)
	const window = 32
	for i := 0; i < msgs; i += window {
		for j := i; j < i+window; j++ {
			pub.Write(wstest.Frame(1, true, true, []byte(fmt.Sprintf(`{"op":"publish","channel":"firehose","data":"%d %s","id":%d}`, j, pad, j))))
		}
		for j := i; j < i+window; j++ {
			if m := pub.next(); m["op"] != "ok" {
				t.Fatalf("publish %d: %v", j, m)
			}
		}
	}
	if n := <-got; n != msgs {
		t.Fatalf("fast subscriber received %d of %d messages", n, msgs)
	}
	// ~20 MB went through; the slow client's backlog must not have stayed in memory.
	if grew := g.rssKiB() - rssBefore; grew > 24<<10 {
		t.Fatalf("gateway RSS grew by %d KiB while a client was not reading", grew)
	}
	// The slow consumer's connection was closed by the server: draining what
	// its kernel buffer holds ends in EOF, not a timeout.
	slow.ExpectEOF(10 * time.Second)
	_, metrics := g.get("/metrics")
	if !strings.Contains(metrics, "slow") {
		t.Fatalf("no slow-consumer metric in /metrics")
	}
}
