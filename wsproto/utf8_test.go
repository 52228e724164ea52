package wsproto

import (
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// runePrefixes is every proper prefix of every valid UTF-8 encoding: the
// independent reference for "this incomplete end can still become valid".
var runePrefixes = func() map[string]bool {
	m := map[string]bool{}
	var b [4]byte
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		n := utf8.EncodeRune(b[:], r)
		for i := 1; i < n; i++ {
			m[string(b[:i])] = true
		}
	}
	return m
}()

// canContinue is the reference: s is the start of some valid UTF-8 text.
func canContinue(s []byte) bool {
	for k := 0; k <= 3 && k <= len(s); k++ {
		if utf8.Valid(s[:len(s)-k]) && (k == 0 || runePrefixes[string(s[len(s)-k:])]) {
			return true
		}
	}
	return false
}

// edgeBytes are the bytes where UTF-8 validity changes.
var edgeBytes = []byte{0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
	0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF}

// TestValidUTF8PrefixExhaustive compares validUTF8Prefix with the reference on
// every sequence of up to 4 edge bytes, as a final and as a non-final chunk.
func TestValidUTF8PrefixExhaustive(t *testing.T) {
	var seq []byte
	var walk func(depth int)
	walk = func(depth int) {
		if _, ok := validUTF8Prefix(seq, true); ok != utf8.Valid(seq) {
			t.Fatalf("final % x: got %v", seq, ok)
		}
		tail, ok := validUTF8Prefix(seq, false)
		if ok != canContinue(seq) {
			t.Fatalf("non-final % x: got %v, reference %v", seq, ok, !ok)
		}
		if ok && (tail > 3 || !utf8.Valid(seq[:len(seq)-tail])) {
			t.Fatalf("non-final % x: tail %d", seq, tail)
		}
		if depth == 4 {
			return
		}
		for _, c := range edgeBytes {
			seq = append(seq, c)
			walk(depth + 1)
			seq = seq[:len(seq)-1]
		}
	}
	walk(0)
}

// TestFragmentedUTF8 splits random edge-byte texts into random fragments and
// checks that the decoder fails exactly at the first fragment after which the
// text can no longer become valid, or delivers it when it is valid.
func TestFragmentedUTF8(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 20000; i++ {
		msg := make([]byte, rnd.IntN(12))
		for j := range msg {
			msg[j] = edgeBytes[rnd.IntN(len(edgeBytes))]
		}
		if rnd.IntN(2) == 0 {
			msg = append(msg, "€😀é"[:rnd.IntN(10)]...)
		}
		var frames []frameSpec
		wantEvents, wantErr := []rec{}, uint16(0)
		for start, first := 0, true; start < len(msg) || first; first = false {
			end := start + rnd.IntN(len(msg)-start+1)
			if rnd.IntN(4) == 0 {
				end = len(msg)
			}
			fin := end == len(msg)
			f := cont(string(msg[start:end]), fin)
			if first {
				f.op = 1
			}
			frames = append(frames, f)
			if wantErr == 0 {
				switch {
				case fin && !utf8.Valid(msg):
					wantErr = 1007
				case !fin && !canContinue(msg[:end]):
					wantErr = 1007
				case fin:
					wantEvents = append(wantEvents, evText(string(msg)))
				default:
					wantEvents = append(wantEvents, evFrag())
				}
			}
			start = end
			if fin {
				break
			}
		}
		got := decode(wire(frames...), 0, false, whole, t.Errorf)
		if got.errCode != wantErr || !bytesEqualRecs(got.events, wantEvents) {
			t.Fatalf("message % x in %d fragments: got %v err %d, want %v err %d", msg, len(frames), got.events, got.errCode, wantEvents, wantErr)
		}
	}
}
