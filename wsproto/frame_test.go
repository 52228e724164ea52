package wsproto

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/wshub/wshub/wsproto/wstest"
)

// readBack parses a server frame with gobwas's reader.
func readBack(t *testing.T, b []byte) ws.Frame {
	t.Helper()
	r := bytes.NewReader(b)
	f, err := wstest.ReadFrame(r)
	if err != nil || r.Len() != 0 {
		t.Fatalf("gobwas cannot read our frame: %v (%d bytes left)", err, r.Len())
	}
	if !f.Header.Fin || f.Header.Masked || f.Header.Rsv != 0 {
		t.Fatalf("header %+v: server frames are final and unmasked", f.Header)
	}
	return f
}

func TestBuildFrameSizes(t *testing.T) {
	for _, size := range []int{0, 1, 125, 126, 65535, 65536, 100000} {
		want := bytes.Repeat([]byte{'q'}, size)
		f, p := BuildFrame(ws.OpText, size)
		if len(p) != size {
			t.Fatalf("payload slice of %d bytes, want %d", len(p), size)
		}
		copy(p, want)
		got := readBack(t, f.Bytes())
		if got.Header.OpCode != ws.OpText || !bytes.Equal(got.Payload, want) {
			t.Fatalf("size %d: op %v, payload differs", size, got.Header.OpCode)
		}
		if !bytes.Equal(f.Bytes(), AppendFrame(nil, ws.OpText, want)) {
			t.Fatalf("size %d: BuildFrame and AppendFrame disagree", size)
		}
		f.Release()
	}
}

func TestNewFrameCopies(t *testing.T) {
	src := []byte("payload")
	f := NewFrame(ws.OpBinary, src)
	defer f.Release()
	src[0] = 'X'
	if got := readBack(t, f.Bytes()); string(got.Payload) != "payload" || got.Header.OpCode != ws.OpBinary {
		t.Fatalf("got %q op %v", got.Payload, got.Header.OpCode)
	}
}

func TestCloseFrames(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes; 123 is odd so the cut must back off one byte
	cases := []struct {
		code       uint16
		reason     string
		wantReason string
		empty      bool
	}{
		{code: 1000, reason: "bye", wantReason: "bye"},
		{code: 1009, reason: long, wantReason: strings.Repeat("é", 61)},
		{code: 4000, reason: strings.Repeat("a", 200), wantReason: strings.Repeat("a", 123)},
		{code: CloseNoStatus, reason: "ignored", empty: true},
		{code: 0, empty: true},
	}
	for _, tc := range cases {
		f := NewCloseFrame(tc.code, tc.reason)
		if !bytes.Equal(f.Bytes(), AppendCloseFrame(nil, tc.code, tc.reason)) {
			t.Errorf("code %d: NewCloseFrame and AppendCloseFrame disagree", tc.code)
		}
		got := readBack(t, f.Bytes())
		f.Release()
		if got.Header.OpCode != ws.OpClose || len(got.Payload) > 125 {
			t.Fatalf("code %d: op %v payload %d bytes", tc.code, got.Header.OpCode, len(got.Payload))
		}
		if tc.empty {
			if len(got.Payload) != 0 {
				t.Errorf("code %d: payload %q, want none", tc.code, got.Payload)
			}
			continue
		}
		code, reason := ws.ParseCloseFrameData(got.Payload)
		if uint16(code) != tc.code || reason != tc.wantReason || !utf8.ValidString(reason) {
			t.Errorf("code %d: got %d %q", tc.code, code, reason)
		}
	}
}

// mustPanic runs fn and fails the test unless it panics.
func mustPanic(t *testing.T, what string, fn func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	fn()
}

func TestFrameRefcount(t *testing.T) {
	f := NewFrame(ws.OpText, []byte("shared"))
	f.Retain()
	f.Retain()
	f.Release()
	f.Release()
	if f.Bytes() == nil {
		t.Fatal("buffer returned while a holder remains")
	}
	f.Release()
	if f.Bytes() != nil {
		t.Fatal("last release kept the buffer")
	}
	mustPanic(t, "double release", f.Release)
	g := NewFrame(ws.OpText, nil)
	g.Release()
	mustPanic(t, "retain after the last release", g.Retain)
}

// TestFrameRefcountConcurrent shares one frame between goroutines, as the hub
// does between loops; run with -race.
func TestFrameRefcountConcurrent(t *testing.T) {
	for round := 0; round < 50; round++ {
		f := NewFrame(ws.OpText, []byte(`{"op":"message"}`))
		const holders = 8
		var wg sync.WaitGroup
		for i := 0; i < holders; i++ {
			f.Retain()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if string(f.Bytes()[2:]) != `{"op":"message"}` {
					t.Error("frame changed under a holder")
				}
				f.Release()
			}()
		}
		f.Release()
		wg.Wait()
		if f.Bytes() != nil {
			t.Fatal("buffer not returned after every holder released")
		}
	}
}

func TestBuildFrameAllocs(t *testing.T) {
	payload := []byte(`{"op":"message","channel":"room:42","data":{"text":"hi"}}`)
	allocs := testing.AllocsPerRun(200, func() {
		f, p := BuildFrame(ws.OpText, len(payload))
		copy(p, payload)
		f.Release()
	})
	if allocs > 1 {
		t.Fatalf("%v allocations per frame, want at most 1 (the Frame struct)", allocs)
	}
}
