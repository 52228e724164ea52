package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/wshub/wshub/loadtest"
)

// TestSummaryShowsRefusalsByStatus: refused upgrades get their own row,
// each status with its name, beside the error total that includes them.
func TestSummaryShowsRefusalsByStatus(t *testing.T) {
	res := &loadtest.Result{
		Scenario: loadtest.ScenarioIdle, Conns: 7, Failed: 7, Errors: 7,
		ErrorsByKind: map[string]int64{"refused": 6, "handshake": 1},
		Refused:      map[string]int64{"429": 2, "401": 4},
	}
	var out bytes.Buffer
	printSummary(&out, res, &loadtest.Config{})
	for _, want := range []string{
		"  errors         7 (handshake 1, refused 6)\n",
		"  refused        401 Unauthorized 4, 429 Too Many Requests 2\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	res.Refused, res.ErrorsByKind = nil, map[string]int64{"handshake": 7}
	if printSummary(&out, res, &loadtest.Config{}); strings.Contains(out.String(), "refused") {
		t.Errorf("a run without refusals shows a refused row:\n%s", out.String())
	}
}
