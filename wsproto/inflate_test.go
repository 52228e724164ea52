package wsproto

import (
	"bytes"
	"compress/flate"
	"encoding/hex"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The test data is deflated with the standard library's compress/flate,
// not the library the decoder inflates with, so each checks the other.

// syncFlushed compresses msgs with one writer, as a client that keeps its
// context across messages does, each message ending with a sync flush
// (whose 00 00 ff ff is still there).
func syncFlushed(level int, msgs ...string) [][]byte {
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, level)
	if err != nil {
		panic(err)
	}
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		w.Write([]byte(m))
		w.Flush()
		out[i] = bytes.Clone(b.Bytes())
		b.Reset()
	}
	return out
}

// deflateMsg is s as a permessage-deflate sender sends it (RFC 7692
// §7.2.1): raw DEFLATE ending in a sync flush, without its 00 00 ff ff.
func deflateMsg(s string) []byte { return stripTail(syncFlushed(flate.BestCompression, s)[0]) }

func stripTail(b []byte) []byte {
	if !bytes.HasSuffix(b, []byte{0, 0, 0xff, 0xff}) {
		panic("no sync flush at the end")
	}
	return b[:len(b)-4]
}

// compressed is a final data frame of opcode op holding s deflated, RSV1 set.
func compressed(op byte, s string) frameSpec {
	return frameSpec{fin: true, op: op, rsv: 0x40, payload: deflateMsg(s)}
}

// rawCompressed is a final compressed frame with the given deflated bytes.
func rawCompressed(op byte, p string) frameSpec {
	return frameSpec{fin: true, op: op, rsv: 0x40, payload: []byte(p)}
}

// compressedFrags is s deflated and cut into n frames (RSV1 on the first).
func compressedFrags(op byte, s string, n int) []frameSpec {
	p := deflateMsg(s)
	out := make([]frameSpec, n)
	for i := range n {
		part := p[len(p)*i/n : len(p)*(i+1)/n]
		out[i] = frameSpec{fin: i == n-1, payload: part}
		if i == 0 {
			out[i].op, out[i].rsv = op, 0x40
		}
	}
	return out
}

func evZText(s string) rec { return rec{Kind: EventText, Payload: s, Compressed: true} }
func evZBin(s string) rec  { return rec{Kind: EventBinary, Payload: s, Compressed: true} }

// lorem is text that compresses well, with back-references.
var lorem = strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 20)

// deflateCases are the decoder cases of compressed messages.
func deflateCases() []decodeCase {
	bomb := deflateMsg(strings.Repeat("a", 1<<20)) // about 1 KiB inflating to 1 MiB
	if len(bomb) > 4096 {
		panic("the bomb is too big to pass the frame size check")
	}
	withContext := syncFlushed(flate.DefaultCompression, lorem, lorem)
	var frags []frameSpec
	frags = append(frags, compressedFrags(2, lorem, 3)[:2]...)
	frags = append(frags, ping("mid"), compressedFrags(2, lorem, 3)[2])
	return []decodeCase{
		{
			name:     "compressed text",
			input:    wire(compressed(1, "hello, hello, hello")),
			compress: true,
			events:   []rec{evZText("hello, hello, hello")},
		},
		{
			name:     "compressed binary in three fragments, a ping between",
			input:    wire(frags...),
			compress: true,
			events:   []rec{evFrag(), evFrag(), evPing("mid"), evZBin(lorem)},
		},
		{
			name:     "compressed and plain messages mix",
			input:    wire(compressed(1, lorem), text("plain"), compressed(2, "\x00\xff"), bin("raw")),
			compress: true,
			events:   []rec{evZText(lorem), evText("plain"), evZBin("\x00\xff"), evBin("raw")},
		},
		{
			name:     "fragmented compressed text, split inside a code point",
			input:    wire(compressedFrags(1, strings.Repeat("é€😀", 50), 7)...),
			compress: true,
			events:   []rec{evFrag(), evFrag(), evFrag(), evFrag(), evFrag(), evFrag(), evZText(strings.Repeat("é€😀", 50))},
		},
		{
			// zlib sends an empty message as one 0x00 byte; a sender that
			// strips the whole empty block leaves nothing: both are "".
			name:     "empty compressed messages",
			input:    wire(rawCompressed(1, "\x00"), rawCompressed(1, ""), rawCompressed(2, "")),
			compress: true,
			events:   []rec{evZText(""), evZText(""), evZBin("")},
		},
		{
			// RFC 7692 §7.2.3.1, §7.2.3.3, §7.2.3.4 and §7.2.3.5: one
			// compressed block, a stored block, a BFINAL block (the last
			// 0x00 is the header of the empty block the sender appended)
			// and two blocks, each "Hello".
			name: "RFC 7692 examples",
			input: wire(rawCompressed(1, "\xf2\x48\xcd\xc9\xc9\x07\x00"),
				rawCompressed(1, "\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00"),
				rawCompressed(1, "\xf3\x48\xcd\xc9\xc9\x07\x00\x00"),
				rawCompressed(1, "\xf2\x48\x05\x00\x00\x00\xff\xff\xca\xc9\xc9\x07\x00")),
			compress: true,
			events:   []rec{evZText("Hello"), evZText("Hello"), evZText("Hello"), evZText("Hello")},
		},
		{
			name:     "inflated size exactly the limit",
			input:    wire(compressed(1, lorem)),
			max:      len(lorem),
			compress: true,
			events:   []rec{evZText(lorem)},
		},
		{
			name:     "inflated size one byte over the limit",
			input:    wire(compressed(1, lorem)),
			max:      len(lorem) - 1,
			compress: true,
			errCode:  1009,
		},
		{
			name:     "deflate bomb",
			input:    wire(rawCompressed(2, string(bomb)), text("never read")),
			max:      4096,
			compress: true,
			errCode:  1009,
		},
		{
			name:     "fragmented deflate bomb",
			input:    wire(compressedFrags(2, strings.Repeat("a", 1<<20), 4)...),
			max:      4096,
			compress: true,
			events:   []rec{evFrag(), evFrag(), evFrag()},
			errCode:  1009,
		},
		{
			name:     "reserved block type",
			input:    wire(rawCompressed(1, "\xff\xff\xff")),
			compress: true,
			errCode:  1007,
		},
		{
			name:     "truncated deflate stream",
			input:    wire(rawCompressed(2, string(deflateMsg(lorem)[:20]))),
			compress: true,
			errCode:  1007,
		},
		{
			name:     "stored block length mismatch",
			input:    wire(rawCompressed(2, "\x00\x05\x00\xfb\xffHello")),
			compress: true,
			errCode:  1007,
		},
		{
			// We ask for client_no_context_takeover: a client that keeps its
			// window refers past the message's start, which is corrupt.
			name:     "back-reference into the previous message",
			input:    wire(rawCompressed(1, string(stripTail(withContext[0]))), rawCompressed(1, string(stripTail(withContext[1])))),
			compress: true,
			events:   []rec{evZText(lorem)},
			errCode:  1007,
		},
		{
			name:     "invalid UTF-8 once inflated",
			input:    wire(compressed(2, "ok \xff"), compressed(1, "bad \xff")),
			compress: true,
			events:   []rec{evZBin("ok \xff")},
			errCode:  1007,
		},
		{
			name:     "RSV1 on a continuation of a compressed message",
			input:    wire(frameSpec{op: 1, rsv: 0x40, payload: deflateMsg("x")}, frameSpec{fin: true, rsv: 0x40}),
			compress: true,
			events:   []rec{evFrag()},
			errCode:  1002,
		},
		{
			name:     "RSV2 with compression",
			input:    wire(frameSpec{fin: true, op: 1, rsv: 0x60, payload: deflateMsg("x")}),
			compress: true,
			errCode:  1002,
		},
		{
			name:    "compressed message without negotiation",
			input:   wire(compressed(1, "hello")),
			errCode: 1002,
		},
	}
}

// bombFrame is one frame of about 1 MiB whose payload inflates to 1 GiB of
// zeros: 1024 copies of 1 MiB deflated with a sync flush (a DEFLATE stream
// may be cut after any sync flush and go on with another).
func bombFrame(tb testing.TB) []byte {
	chunk := syncFlushed(flate.BestCompression, string(make([]byte, 1<<20)))[0]
	bomb := stripTail(bytes.Repeat(chunk, 1024))
	// Two chunks really do make 2 MiB of zeros, and nothing else.
	got, err := inflate(nil, stripTail(bytes.Repeat(chunk, 2)), 4<<20)
	if err != nil || len(got) != 2<<20 || bytes.ContainsFunc(got, func(r rune) bool { return r != 0 }) {
		tb.Fatalf("two chunks inflate to %d bytes: %v", len(got), err)
	}
	return wire(frameSpec{fin: true, op: 2, rsv: 0x40, payload: bomb})
}

// TestInflateBombBounded decodes frames with enormous ratios and checks
// that the decoder stops at the limit (1009), fast, having allocated little
// more than the limit: a 1 KiB frame that inflates to 1 MiB under the
// default 64 KiB limit, and a 1 MiB frame that inflates to 1 GiB under a 2
// MiB limit.
func TestInflateBombBounded(t *testing.T) {
	small := wire(rawCompressed(2, string(deflateMsg(strings.Repeat("a", 1<<20)))))
	warm := deflateMsg(lorem)
	for _, tc := range []struct {
		name  string
		frame []byte
		max   int
	}{
		{"1KiB to 1MiB", small, 0},
		{"1MiB to 1GiB", bombFrame(t), 2 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d Decoder
			d.Init(tc.max)
			d.AllowCompressed(true)
			var before, after runtime.MemStats
			runtime.GC()
			// After the GC, which empties sync.Pools: the pooled inflater
			// exists, so only the message is counted.
			inflate(nil, warm, 1<<20) // a dynamic block: the Huffman tables exist too
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, _, err := d.Next(tc.frame)
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			if err != errTooBig {
				t.Fatalf("err %v, want 1009", err)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d-byte frame, limit %d: 1009 after %v, %d bytes allocated", len(tc.frame), d.max, took, alloc)
			// Doubling from 4 KiB to the limit allocates under twice the
			// limit; the pools' own bookkeeping is a few hundred bytes,
			// and a new inflater about 42 KiB (the race detector makes
			// sync.Pool drop one at random).
			bound := uint64(2*d.max + 16<<10)
			if raceEnabled {
				bound += 64 << 10
			}
			if alloc > bound {
				t.Errorf("allocated %d bytes, bound %d", alloc, bound)
			}
			if took > 2*time.Second { // milliseconds on an idle machine; room for -race
				t.Errorf("took %v", took)
			}
			d.Reset()
		})
	}
}

// TestInflateAllocs: a compressed message costs no allocation once the pools
// are warm.
func TestInflateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	frame := wire(frameSpec{fin: true, op: 1, rsv: 0x40, payload: deflateMsg(lorem)})
	unmasked := bytes.Clone(frame)
	var d Decoder
	d.Init(0)
	d.AllowCompressed(true)
	allocs := testing.AllocsPerRun(100, func() {
		copy(frame, unmasked) // Next unmasked the previous copy in place
		for buf := frame; ; {
			ev, n, err := d.Next(buf)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			if string(ev.Payload) != lorem {
				t.Fatalf("payload %q", ev.Payload)
			}
			buf = buf[n:]
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per compressed message", allocs)
	}
}

// TestInflaterForgets: a pooled inflater starts each message afresh, so a
// message cannot read what an earlier one (another client's) left in the
// window.
func TestInflaterForgets(t *testing.T) {
	msgs := syncFlushed(flate.DefaultCompression, lorem, lorem)
	if got, err := inflate(nil, stripTail(msgs[0]), 1<<20); err != nil || string(got) != lorem {
		t.Fatalf("first: %q %v", got, err)
	}
	if _, err := inflate(nil, stripTail(msgs[1]), 1<<20); err != errDeflate {
		t.Fatalf("second message, referring to the first: %v, want errDeflate", err)
	}
}

// TestInflaterKeepsNoTables: a corrupt message's outcome does not depend on
// what the pooled inflater read before. This one (found by FuzzFrames)
// inflates 59 bytes and then reads a distance from a distance tree with no
// codes: corrupt, as compress/flate says. The library keeps the previous
// table for such a tree (see scrubStream), so after a message with
// distances it used to decode on with that message's table: 1139 bytes
// and 1009, where a fresh inflater says 1007.
func TestInflaterKeepsNoTables(t *testing.T) {
	corrupt, _ := hex.DecodeString("ecca510dc0200c04502b276099929920d02c97144a9be27f1ef65d0107cb160d06ca110d078e0ba2a9e4856e2ba4a7e471b4c1cde85c2f64326f142c58bae00ff8e4")
	std, stdErr := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(corrupt), bytes.NewReader(inflateTail[:]))))
	if stdErr == nil || len(std) != 59 {
		t.Fatalf("compress/flate: %d bytes, %v; want 59 and an error", len(std), stdErr)
	}
	first, firstErr := inflate(nil, corrupt, 1139)
	t.Logf("corrupt message: %d bytes, %v (compress/flate: 59 bytes, %v)", len(first), firstErr, stdErr)
	if firstErr != errDeflate {
		t.Fatalf("corrupt message: %d bytes, %v; want errDeflate", len(first), firstErr)
	}
	// Every prefix of a message with back-references, the whole one
	// included, as the message the inflater read before (the pool has one
	// inflater here: no parallel test runs in this package's process).
	prev := deflateMsg(lorem)
	for n := 1; n <= len(prev); n++ {
		_, _ = inflate(nil, prev[:n], 1<<20)
		if got, err := inflate(nil, corrupt, 1139); err != firstErr || !bytes.Equal(got, first) {
			t.Fatalf("after %d of the %d bytes of a message: %d bytes, %v; first time %d bytes, %v",
				n, len(prev), len(got), err, len(first), firstErr)
		}
	}
	// The scrub is a non-final dynamic block (BTYPE 2), then the end of
	// the stream, and inflates to nothing, for zlib's rules too.
	if scrubStream[0]&7 != 2<<1 {
		t.Fatalf("scrubStream starts with header bits %03b, want a non-final dynamic block", scrubStream[0]&7)
	}
	if got, err := io.ReadAll(flate.NewReader(bytes.NewReader(scrubStream[:]))); err != nil || len(got) != 0 {
		t.Fatalf("compress/flate inflates scrubStream to %q, %v", got, err)
	}
}
