package main

import (
	"strings"
	"testing"
)

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1024": 1024, "512MiB": 512 << 20, "2GiB": 2 << 30, "3 KiB": 3 << 10, "7B": 7, "1TiB": 1 << 40,
	} {
		var b byteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "-1", "2GB", "1.5GiB", "lots", "99999999999TiB"} {
		var b byteSize
		if err := b.Set(in); err == nil {
			t.Errorf("Set(%q) accepted as %d", in, b)
		}
	}
	for v, want := range map[byteSize]string{0: "0", 512 << 20: "512MiB", 3 << 30: "3GiB", 1500: "1500"} {
		if got := v.String(); got != want {
			t.Errorf("String(%d) = %q, want %q", int64(v), got, want)
		}
	}
}

func TestPartialInputFlags(t *testing.T) {
	c, err := parseConfig([]string{"--memory-limit", "1GiB", "--max-partial-bytes", "1048576", "--max-fragments", "16", "--message-timeout", "3s"},
		func(string) (string, bool) { return "", false }, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if c.MemoryLimit != 1<<30 || c.MaxPartial != 1<<20 || c.MaxFragments != 16 || c.MessageTimeout.String() != "3s" {
		t.Fatalf("parsed %+v", c)
	}
	for _, args := range [][]string{
		{"--max-partial-bytes", "1000"}, // under one largest message
		{"--max-fragments", "0"},
		{"--max-fragments", "1048577"}, // wsproto.MaxFragmentsCeiling + 1
		{"--message-timeout", "0s"},
		{"--memory-limit", "lots"},
	} {
		if _, err := parseConfig(args, func(string) (string, bool) { return "", false }, &strings.Builder{}); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	// The descriptor reserve grows with the admin cap and with Redis.
	base, _ := parseConfig(nil, func(string) (string, bool) { return "", false }, &strings.Builder{})
	more, _ := parseConfig([]string{"--admin-max-conns", "500", "--redis", "redis://127.0.0.1:6390"}, func(string) (string, bool) { return "", false }, &strings.Builder{})
	if more.reservedFDs() <= base.reservedFDs()+2*(500-128) {
		t.Fatalf("reserved descriptors %d with a larger admin cap and Redis, %d without", more.reservedFDs(), base.reservedFDs())
	}
}
