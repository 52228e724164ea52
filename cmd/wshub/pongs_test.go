package main

import (
	"strings"
	"testing"

	"github.com/wshub/wshub/eventloop"
)

// max_pongs_per_read defaults to the event loop's default and is checked
// against its bounds.
func TestMaxPongsPerReadSetting(t *testing.T) {
	env := func(string) (string, bool) { return "", false }
	c, err := parseConfig(nil, env, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxPongsPerRead != eventloop.DefaultMaxPongsPerRead {
		t.Fatalf("default max_pongs_per_read %d, want %d", c.MaxPongsPerRead, eventloop.DefaultMaxPongsPerRead)
	}
	if c, err = parseConfig([]string{"--max-pongs-per-read", "8"}, env, &strings.Builder{}); err != nil || c.MaxPongsPerRead != 8 {
		t.Fatalf("--max-pongs-per-read 8: %d, %v", c.MaxPongsPerRead, err)
	}
	for _, v := range []string{"0", "-1", "4097"} {
		if _, err := parseConfig([]string{"--max-pongs-per-read", v}, env, &strings.Builder{}); err == nil {
			t.Errorf("--max-pongs-per-read %s accepted", v)
		}
	}
}
