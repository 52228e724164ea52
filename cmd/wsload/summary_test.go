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

// TestSummaryRecoverRows: a recover run names where its losses are and who
// was away at the end only when there are any.
func TestSummaryRecoverRows(t *testing.T) {
	res := &loadtest.Result{Scenario: loadtest.ScenarioRecover, Lost: 7, Recover: &loadtest.RecoverResult{
		Disconnects: 9, Recoveries: 8, NotRecovered: 1, Unrecovered: 30, LostInGaps: 5, Unfinished: 1, AwayAtEnd: 2, AwayTail: 11}}
	var out bytes.Buffer
	printSummary(&out, res, &loadtest.Config{})
	for _, want := range []string{
		"  reconnects     9 subscribers dropped; 8 recovered (0 messages replayed), 1 not (30 offsets unrecovered)\n",
		"  lost where     5 in gaps (later offsets arrived), the rest after subscribers' last message; 1 replays unfinished\n",
		"  away at end    2 subscribers not subscribed again, 11 offsets published after their last not counted lost\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	res.Recover = &loadtest.RecoverResult{Disconnects: 9, Recoveries: 9}
	if printSummary(&out, res, &loadtest.Config{}); strings.Contains(out.String(), "lost where") || strings.Contains(out.String(), "away at end") {
		t.Errorf("a clean run shows loss rows:\n%s", out.String())
	}
}
