package hub

import (
	"fmt"
	"testing"
	"time"

	"github.com/wshub/wshub/wsproto"
)

func TestBucketRefillsLazily(t *testing.T) {
	b := bucket{tokens: 2, at: 1000}
	rate, burst := float32(10), float32(2) // 10/s: one token per 100 ms
	for i, want := range []bool{true, true, false} {
		if got := b.take(1000, rate, burst); got != want {
			t.Fatalf("take %d at t=1000: %v, want %v", i, got, want)
		}
	}
	if b.take(1050, rate, burst) {
		t.Fatal("half a token after 50 ms was taken")
	}
	if !b.take(1100, rate, burst) {
		t.Fatal("no token 100 ms later")
	}
	// A long silence refills to the burst, not beyond.
	for i, want := range []bool{true, true, false} {
		if got := b.take(900000, rate, burst); got != want {
			t.Fatalf("take %d after a long silence: %v, want %v (the refill is capped at the burst)", i, got, want)
		}
	}
	// The clock wraps: elapsed time is still right across it.
	w := bucket{tokens: 0, at: 1<<32 - 50}
	if !w.take(50, rate, burst) {
		t.Fatal("100 ms across the clock's wrap gave no token")
	}
}

func TestRateLimitAnswers429ThenCloses(t *testing.T) {
	p := newProto(t, Config{Limits: RateLimits{CommandsPerSecond: 0.001, CommandBurst: 2, MaxRejections: 3}})
	c := p.open(0)
	other := p.open(1)
	for i := 1; i <= 2; i++ {
		p.send(c, fmt.Sprintf(`{"op":"ping","id":%d}`, i))
		p.expect(c, fmt.Sprintf(`{"op":"pong","id":%d}`, i))
	}
	for i := 3; i <= 4; i++ {
		p.send(c, fmt.Sprintf(`{"op":"ping","id":%d}`, i))
		p.expect(c, fmt.Sprintf(`{"op":"error","id":%d,"code":429,"message":"rate limit: more than 0.001 commands per second on this connection"}`, i))
	}
	if c.closedWith != 0 {
		t.Fatalf("closed after two refusals (limit 3)")
	}
	p.send(c, `{"op":"ping","id":5}`)
	if c.closedWith != wsproto.ClosePolicy {
		t.Fatalf("third refusal: closed with %d, want 1008", c.closedWith)
	}
	// Another connection has its own buckets.
	p.send(other, `{"op":"ping","id":1}`)
	p.expect(other, `{"op":"pong","id":1}`)
}

func TestPublishRateLimit(t *testing.T) {
	p := newProto(t, Config{Limits: RateLimits{PublishesPerSecond: 0.001, PublishBurst: 1}})
	c := p.open(0)
	p.send(c, `{"op":"publish","channel":"a","data":1,"id":1}`)
	p.expect(c, `{"op":"ok","id":1}`)
	p.send(c, `{"op":"publish","channel":"a","data":2,"id":2}`)
	p.expect(c, `{"op":"error","id":2,"code":429,"message":"rate limit: more than 0.001 publishes per second on this connection"}`)
	// Other commands are not publishes.
	p.send(c, `{"op":"ping","id":3}`)
	p.expect(c, `{"op":"pong","id":3}`)
}

func TestRateLimitRefillsWithTime(t *testing.T) {
	p := newProto(t, Config{Limits: RateLimits{CommandsPerSecond: 50, CommandBurst: 1}})
	c := p.open(0)
	p.send(c, `{"op":"ping","id":1}`)
	p.expect(c, `{"op":"pong","id":1}`)
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.send(c, `{"op":"ping","id":2}`)
		if got := c.take(); len(got) == 1 && got[0] == `{"op":"pong","id":2}` {
			break // a token came back (20 ms at 50/s)
		}
		if time.Now().After(deadline) {
			t.Fatal("the bucket never refilled")
		}
		time.Sleep(5 * time.Millisecond) // paces the retries
	}
}
