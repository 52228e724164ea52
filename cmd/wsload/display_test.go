package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/wshub/wshub/loadtest"
)

// TestProgressLineShowsRefusals: while a run goes on, refused upgrades
// (summed over the workers) are named on the progress line, so a gateway
// turning tokens away is seen before the summary.
func TestProgressLineShowsRefusals(t *testing.T) {
	var out bytes.Buffer
	d := newDisplay(&out, false)
	d.lastAt = time.Now().Add(-time.Second) // a second since the last line
	d.update([]loadtest.Progress{{Phase: "setup", Errors: 3, Refused: 2}, {Phase: "setup", Errors: 1, Refused: 1}})
	if line := out.String(); !strings.Contains(line, "errors 4 (3 upgrades refused)\n") {
		t.Errorf("progress line %q", line)
	}
	out.Reset()
	d.lastAt = time.Now().Add(-time.Second)
	if d.update([]loadtest.Progress{{Phase: "idle", Errors: 1}}); strings.Contains(out.String(), "refused") || !strings.Contains(out.String(), "errors 1\n") {
		t.Errorf("progress line without refusals %q", out.String())
	}
}
