package hub

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

var jsonSamples = []string{
	`0`, `-0`, `1`, `-1.5e+10`, `1E-2`, `0.0`, `123456789012345678901234567890`,
	`01`, `-`, `1.`, `.5`, `1e`, `1e+`, `+1`, `0x10`, `NaN`, `-Infinity`,
	`""`, `"a\"b\\c\/d\b\f\n\r\t"`, `"\u00e9\uD83D\uDE00"`, `"\u12"`, `"\x"`, `"abc`, "\"a\tb\"", "\"\x7f\"",
	`true`, `false`, `null`, `tru`, `nul`, `True`, `truex`,
	`[]`, `[ ]`, `[1,2]`, `[1,]`, `[,1]`, `[1 2]`, `[[[]]]`, `[`, `]`,
	`{}`, `{ }`, `{"a":1}`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":1 "b":2}`, `{"a":{"b":[null]}}`, `{"a"}`,
	` 1 `, "\t\n\r[1]\n", `1 2`, ``, ` `, `{"a":1}}`, `[1]]`,
	`{"op":"publish","channel":"x","data":{"deep":[1,{"x":"y"}]}}`,
	strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
}

// The scanner agrees with encoding/json on what is valid JSON.
func TestValidJSONMatchesEncodingJSON(t *testing.T) {
	for _, s := range jsonSamples {
		if got, want := validJSON([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("validJSON(%q) = %v, encoding/json says %v", s, got, want)
		}
	}
	deep := strings.Repeat("[", maxDepth+2) + strings.Repeat("]", maxDepth+2)
	if validJSON([]byte(deep)) {
		t.Error("nesting beyond maxDepth accepted")
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range jsonSamples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) || strings.Count(s, "[")+strings.Count(s, "{") > maxDepth {
			return // UTF-8 and depth are checked elsewhere
		}
		if got, want := validJSON([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Fatalf("validJSON(%q) = %v, encoding/json says %v", s, got, want)
		}
	})
}

func FuzzParseCommand(f *testing.F) {
	f.Add(`{"op":"publish","channel":"a","data":[1,"x"],"id":3}`)
	f.Add(`{"op":"subscribe","channel":"a\u0041","since":"0-1"}`)
	f.Add(`{"op":"ping","id":-1}`)
	f.Fuzz(func(t *testing.T, s string) {
		var cmd command
		err := parseCommand([]byte(s), &cmd)
		if err != nil {
			if err.Code != 400 {
				t.Fatalf("parse error with code %d", err.Code)
			}
			return
		}
		if !json.Valid([]byte(s)) && utf8.ValidString(s) {
			t.Fatalf("accepted invalid JSON %q", s)
		}
		if cmd.op == opPublish && !json.Valid(cmd.data) {
			t.Fatalf("data %q is not a JSON value", cmd.data)
		}
	})
}

func BenchmarkParseCommand(b *testing.B) {
	for _, bc := range []struct{ name, msg string }{
		{"publish", `{"op":"publish","channel":"room:42","data":{"text":"hello, world","user":"u123","n":[1,2,3]},"id":12345}`},
		{"subscribe", `{"op":"subscribe","channel":"room:42","id":1}`},
		{"publish4KB", `{"op":"publish","channel":"feed","data":"` + strings.Repeat("abcdefgh", 512) + `"}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			msg := []byte(bc.msg)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			var cmd command
			for i := 0; i < b.N; i++ {
				if err := parseCommand(msg, &cmd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Every ASCII byte, and a multi-byte character, at every position of a long
// string (all lanes of the eight-byte fast path) is judged like
// encoding/json does.
func TestScanStringEveryByteEveryLane(t *testing.T) {
	for p := 0; p < 20; p++ {
		for c := 0; c < 0x80; c++ {
			s := []byte(`"` + strings.Repeat("a", 20) + `"`)
			s[1+p] = byte(c)
			if got, want := validJSON(s), json.Valid(s); got != want {
				t.Fatalf("validJSON(%q) = %v, encoding/json says %v", s, got, want)
			}
		}
		ok := `"` + strings.Repeat("a", p) + "é" + strings.Repeat("b", 20-p) + `"`
		bad := `"` + strings.Repeat("a", p) + "é\"" + strings.Repeat("b", 20-p) + `"`
		if !validJSON([]byte(ok)) || validJSON([]byte(bad)) {
			t.Fatalf("%q or %q misjudged", ok, bad)
		}
	}
}
