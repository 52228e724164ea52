package wsproto

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// randomText is a text of edge bytes, runes and ASCII; long ones cross
// CheckPartial's unmasking chunks.
func randomText(rnd *rand.Rand) []byte {
	n := rnd.IntN(12)
	if rnd.IntN(4) == 0 {
		n = rnd.IntN(3 * partialChunk)
	}
	var msg []byte
	for len(msg) < n {
		switch rnd.IntN(4) {
		case 0:
			msg = append(msg, edgeBytes[rnd.IntN(len(edgeBytes))])
		case 1:
			msg = append(msg, "€😀é"[:rnd.IntN(10)]...)
		default:
			msg = append(msg, "abc€😀é"...)
		}
	}
	if n > 12 && rnd.IntN(2) == 0 {
		// Long valid text, but for at most one edge byte somewhere.
		msg = bytes.Repeat([]byte("ab€😀"), n/9+1)[:n]
		msg = append(msg, "😀"...)
		if rnd.IntN(2) == 0 {
			msg[rnd.IntN(len(msg))] = edgeBytes[rnd.IntN(len(edgeBytes))]
		}
	}
	return msg
}

// CheckPartial, given an incomplete text frame chop by chop (and the
// fragments of the message before it), fails exactly at the first chop
// after which the text so far can no longer become valid UTF-8, and never
// before; Next then handles each complete frame as usual.
func TestCheckPartial(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 20000; i++ {
		checkPartialText(t, randomText(rnd), rnd)
	}
}

// FuzzCheckPartial is TestCheckPartial on any text, fragments and chops.
func FuzzCheckPartial(f *testing.F) {
	f.Add([]byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited"), uint64(1))
	f.Add([]byte("ab\xe2\x82\xac\xed\xa0\x80"), uint64(2))
	f.Fuzz(func(t *testing.T, msg []byte, seed uint64) {
		if len(msg) > 4*partialChunk {
			msg = msg[:4*partialChunk]
		}
		checkPartialText(t, msg, rand.New(rand.NewPCG(seed, seed>>32)))
	})
}

// checkPartialText sends msg as a text message in random fragments, each
// frame in random chops, and checks CheckPartial at every chop against the
// reference canContinue.
func checkPartialText(t *testing.T, msg []byte, rnd *rand.Rand) {
	var d Decoder
	d.Init(1 << 20)
	failed := false
frames:
	for start, first := 0, true; start < len(msg) || first; first = false {
		end := start + rnd.IntN(len(msg)-start+1)
		if rnd.IntN(3) == 0 {
			end = len(msg)
		}
		fin := end == len(msg)
		f := cont(string(msg[start:end]), fin)
		if first {
			f.op = 1
		}
		w := f.encode()
		hdr := len(w) - (end - start)
		checked := 0
		for have := 0; have < len(w); {
			have = min(len(w), have+1+rnd.IntN(1+len(w)/3))
			if have == len(w) {
				break // complete: Next's
			}
			got, err := d.CheckPartial(w[:have], checked)
			avail := max(have-hdr, 0)
			want := canContinue(msg[:start+avail])
			if (err == nil) != want {
				t.Fatalf("text % x, frame [%d:%d], %d of %d bytes in: err %v, want valid prefix %v", msg, start, end, have, len(w), err, want)
			}
			if err != nil {
				failed = true
				break frames
			}
			if got < checked || got > avail || got < avail-3 {
				t.Fatalf("text % x, frame [%d:%d], %d bytes in: checked %d after %d, want within 3 of %d", msg, start, end, have, got, checked, avail)
			}
			checked = got
		}
		ev, n, err := d.Next(w)
		if err != nil {
			if !fin && canContinue(msg[:end]) || fin && err != errTextUTF8 {
				t.Fatalf("text % x, frame [%d:%d]: Next: %v", msg, start, end, err)
			}
			failed = true
			break
		}
		if n != len(w) || fin && (ev.Kind != EventText || !bytes.Equal(ev.Payload, msg)) {
			t.Fatalf("text % x, frame [%d:%d]: Next: %v %d", msg, start, end, ev.Kind, n)
		}
		start = end
		if fin {
			break
		}
	}
	if !failed && !canContinue(msg) {
		t.Fatalf("text % x: never failed", msg)
	}
}

// Binary frames, compressed text and continuations of either are not
// checked; nor are complete frames or unreadable headers.
func TestCheckPartialSkips(t *testing.T) {
	bad := "ok\xff\xfe"
	for name, tc := range map[string]struct {
		before []frameSpec // complete frames first
		f      frameSpec
		cut    int // bytes of f's wire form given (0: all)
	}{
		"binary":               {f: bin(bad + "more"), cut: 10},
		"compressed":           {f: frameSpec{fin: true, rsv: 0x40, op: 1, payload: []byte(bad + "more")}, cut: 10},
		"binary continuation":  {before: []frameSpec{frag(2, "a")}, f: cont(bad+"more", true), cut: 10},
		"complete text":        {f: text(bad)},
		"header not readable":  {f: text(string(make([]byte, 200)) + bad), cut: 3},
		"compressed fragments": {before: []frameSpec{{rsv: 0x40, op: 1, payload: []byte("a")}}, f: cont(bad+"more", true), cut: 10},
	} {
		var d Decoder
		d.Init(1 << 20)
		d.AllowCompressed(true)
		for _, b := range tc.before {
			if _, _, err := d.Next(b.encode()); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		w := tc.f.encode()
		if tc.cut > 0 {
			w = w[:tc.cut]
		}
		if got, err := d.CheckPartial(w, 0); got != 0 || err != nil {
			t.Errorf("%s: CheckPartial = %d, %v; want it left to Next", name, got, err)
		}
	}
}

// A frame arriving in many pieces: the count each call returns, where the
// next starts, only grows and keeps up with what has arrived (a rune is 3
// bytes here, so it is mid-rune at most piece ends); a call allocates
// nothing.
func TestCheckPartialIncremental(t *testing.T) {
	msg := bytes.Repeat([]byte("€"), 20000)
	w := text(string(msg)).encode()
	var d Decoder
	d.Init(1 << 20)
	checked := 0
	for have := 1; have < len(w); have += 7 {
		var err error
		prev := checked
		if checked, err = d.CheckPartial(w[:have], checked); err != nil {
			t.Fatal(err)
		}
		if avail := max(have-4-4, 0); checked < prev || checked < avail-2 || checked%3 != 0 {
			t.Fatalf("%d bytes in: checked %d after %d", have, checked, prev)
		}
	}
	if checked < len(msg)-7-2 {
		t.Fatalf("checked %d of %d", checked, len(msg))
	}
	allocs := testing.AllocsPerRun(100, func() { _, _ = d.CheckPartial(w[:len(w)-1], 0) })
	if allocs != 0 {
		t.Fatalf("%v allocations per call", allocs)
	}
}
