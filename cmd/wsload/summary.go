package main

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/wshub/wshub/loadtest"
)

// printSummary writes the human summary table.
func printSummary(w io.Writer, r *loadtest.Result, c *loadtest.Config) {
	row := func(k, format string, a ...any) { fmt.Fprintf(w, "  %-14s %s\n", k, fmt.Sprintf(format, a...)) }
	against := strings.Join(r.Targets, ", ")
	if len(r.PublishTargets) > 0 {
		against += "; publishers on " + strings.Join(r.PublishTargets, ", ")
	}
	fmt.Fprintf(w, "\nwsload %s against %s (%d process(es), %.1fs main phase)\n", r.Scenario, against, r.Procs, r.DurationS)
	if r.Scenario == loadtest.ScenarioChurn {
		row("connections", "%d dialed, %d failed", r.Conns, r.Failed)
	} else {
		row("connections", "%d ready of %d, %d failed", r.Connected, r.Conns, r.Failed)
	}
	if t := tokensLine(r, c); t != "" {
		row("tokens", "%s", t)
	}
	if r.Handshake.Count > 0 {
		row("handshake", "%s", pcts(r.Handshake))
	}
	if r.Subscribe.Count > 0 {
		row("subscribe", "%s", pcts(r.Subscribe))
	}
	switch r.Scenario {
	case loadtest.ScenarioFanout, loadtest.ScenarioSlow, loadtest.ScenarioRecover:
		row("published", "%d (%.0f/s), %d rejected; %d B payloads, %d channels", r.Published, r.PublishesPerS, r.Rejected, c.Size, c.Channels)
		pct := 100.0
		if r.Expected > 0 {
			pct = 100 * float64(r.Delivered) / float64(r.Expected)
		}
		row("delivered", "%d of %d expected (%.3f%%)", r.Delivered, r.Expected, pct)
		row("lost/dup/ooo", "%d lost, %d duplicates, %d out of order", r.Lost, r.Duplicates, r.Reordered)
		row("deliveries/s", "%.0f", r.DeliveriesPerS)
		if r.Latency.Count > 0 || r.Recover == nil || len(r.Recover.Rounds) == 0 { // rounds deliver nothing live
			row("latency", "%s", pcts(r.Latency))
		}
		if s := r.Recover; s != nil {
			printRecover(row, s)
		}
	case loadtest.ScenarioPresence:
		if s := r.Presence; s != nil {
			printPresence(row, s)
		}
	case loadtest.ScenarioChurn:
		row("churn", "%d cycles, %.0f handshakes/s", r.Churn.Completed, r.Churn.HandshakesPerS)
	case loadtest.ScenarioStorm:
		s := r.Storm
		rec := "not all came back"
		if s.Missing == 0 && s.Dropped > 0 {
			rec = fmt.Sprintf("all back in %.0f ms", s.RecoveredMs)
		}
		row("storm", "%d dropped, %d missing at the end; %s", s.Dropped, s.Missing, rec)
		row("reconnect", "%s", pcts(s.Reconnect))
	}
	if s := r.Slow; s != nil {
		row("slow subs", "%d, %d dropped by the gateway (codes %v), got %d of %d", s.Subs, s.Dropped, s.Codes, s.Delivered, s.Expected)
		if s.Dropped > 0 {
			row("dropped after", "p50 %d ms, max %d ms of publishing (last message each received)", s.DropAtMs.P50, s.DropAtMs.Max)
		}
	}
	errs := fmt.Sprintf("%d", r.Errors)
	if len(r.ErrorsByKind) > 0 {
		errs += " (" + kv(r.ErrorsByKind) + ")"
	}
	row("errors", "%s", errs)
	if len(r.Refused) > 0 {
		// The statuses say what the gateway decided: 401 a token it
		// refused, 429 a connection or rate limit.
		row("refused", "%s", kvNamed(r.Refused, httpStatus))
	}
	if len(r.CloseCodes) > 0 {
		row("close codes", "%s", kv(r.CloseCodes))
	}
	if s := r.Server; s != nil {
		extra := ""
		if s.CPUPerDelivery > 0 {
			extra = fmt.Sprintf(", %.3f µs CPU/delivery", s.CPUPerDelivery)
		}
		if s.WrittenPerDelivery > 0 {
			extra += fmt.Sprintf(", %.1f B written/delivery", s.WrittenPerDelivery)
		}
		perConn := fmtBytes(s.RSSPerConn) + "/conn"
		if s.RSSPerConn < 0 {
			// The gateway returned memory from an earlier run to the OS
			// while this one connected: no per-connection figure to give.
			perConn = "RSS fell during setup; per-conn needs a fresh gateway"
		}
		if s.RSSDone > 0 && s.RSSPerConnDone >= 0 {
			perConn += fmt.Sprintf("; %s (%s/conn) at the end", fmtBytes(float64(s.RSSDone)), fmtBytes(s.RSSPerConnDone))
		}
		row("gateway", "RSS %s (%s), CPU %.1f%% of a core%s", fmtBytes(float64(s.RSSReady)), perConn, s.CPUPercent, extra)
	}
	self := fmt.Sprintf("CPU %.1f%% of a core", r.Self.CPUPercent)
	if r.Self.CPUPerMsgUs > 0 {
		self += fmt.Sprintf(" (%.3f µs/msg)", r.Self.CPUPerMsgUs)
	}
	row("wsload", "%s, RSS %s (%s/conn)", self, fmtBytes(float64(r.Self.RSS)), fmtBytes(r.Self.RSSPerConn))
}

// printRecover adds the recover scenario's rows: how the reconnects were
// answered and how long recovering took.
func printRecover(row func(k, format string, a ...any), s *loadtest.RecoverResult) {
	row("reconnects", "%d subscribers dropped; %d recovered (%d messages replayed), %d not (%d offsets unrecovered)",
		s.Disconnects, s.Recoveries, s.Replayed, s.NotRecovered, s.Unrecovered)
	if s.EpochChanges > 0 {
		row("epochs", "%d reconnects found another epoch: their gaps are not counted", s.EpochChanges)
	}
	if s.LostInGaps > 0 || s.Unfinished > 0 {
		row("lost where", "%d in gaps (later offsets arrived), the rest after subscribers' last message; %d replays unfinished", s.LostInGaps, s.Unfinished)
	}
	if s.AwayAtEnd > 0 {
		row("away at end", "%d subscribers not subscribed again, %d offsets published after their last not counted lost", s.AwayAtEnd, s.AwayTail)
	}
	row("recovery ok", "%s", pcts(s.OK))
	row("caught up", "%s", pcts(s.CaughtUp))
	printRounds(row, s)
}

// printRounds adds recover --missed's rows: per round, how the burst of
// reconnects settled, how long it took and what it cost the gateway; then
// the medians.
func printRounds(row func(k, format string, a ...any), s *loadtest.RecoverResult) {
	for i, r := range s.Rounds {
		row(fmt.Sprintf("round %d", i+1), "%d subscribers, %d missed: %d caught up, %d not recovered, %d unsettled; %d replayed",
			r.Subs, r.Missed, r.CaughtUp, r.NotRecovered, r.Unsettled, r.Replayed)
		rss := ""
		if r.GatewayRSSGrowth != 0 {
			rss = fmt.Sprintf(", its RSS %+.1f MiB", float64(r.GatewayRSSGrowth)/(1<<20))
		}
		row("  all settled", "in %.1f ms%s%s", r.AllMs, gatewayCPU(r.GatewayCPUS, r.GatewayPerReplayUs), rss)
		row("  catch-up", "%s (from the burst)", pcts(r.CatchUp))
	}
	if m := s.RoundMedian; m != nil && len(s.Rounds) > 1 {
		row("rounds median", "all settled in %.1f ms, catch-up p50 %s p99 %s%s",
			m.AllMs, fmtUs(int64(m.CatchUpP50Us)), fmtUs(int64(m.CatchUpP99Us)), gatewayCPU(m.GatewayCPUS, m.GatewayPerReplayUs))
	}
}

// gatewayCPU is ", gateway CPU 1.234 s (0.567 µs/replayed)", without
// the part in parentheses when nothing was replayed, "" unsampled.
func gatewayCPU(sec, perReplay float64) string {
	switch {
	case sec == 0 && perReplay == 0:
		return ""
	case perReplay == 0:
		return fmt.Sprintf(", gateway CPU %.3f s", sec)
	}
	return fmt.Sprintf(", gateway CPU %.3f s (%.3f µs/replayed)", sec, perReplay)
}

// tokensLine says what the upgrades presented, "" for nothing. Tokens
// minted during the run are named: they cost the pollers time the run
// measured.
func tokensLine(r *loadtest.Result, c *loadtest.Config) string {
	in := "?token="
	if c.TokenHeader {
		in = "Authorization: Bearer"
	}
	switch {
	case c.Token != "":
		return "one fixed token (--token) in " + in
	case c.JWTSecret != "":
		var t loadtest.TokenStats
		if r.Tokens != nil {
			t = *r.Tokens
		}
		per := "connection"
		if c.Scenario == loadtest.ScenarioPresence {
			per = "user (a member reconnects as itself)"
		}
		return fmt.Sprintf("HS256, one per "+per+", in %s; %d minted before the run, %d during it", in, t.Preminted, t.DuringRun)
	}
	return ""
}

// httpStatus is a status code with its text: "401 Unauthorized".
func httpStatus(code string) string {
	n, _ := strconv.Atoi(code)
	if text := http.StatusText(n); text != "" {
		return code + " " + text
	}
	return code
}

func pcts(s loadtest.Summary) string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (n=%d)",
		fmtUs(s.P50), fmtUs(s.P90), fmtUs(s.P99), fmtUs(s.P999), fmtUs(s.Max), s.Count)
}

func kv(m map[string]int64) string { return kvNamed(m, func(k string) string { return k }) }

// kvNamed is kv with each key shown as name(key).
func kvNamed(m map[string]int64, name func(string) string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", name(k), m[k])
	}
	return strings.Join(parts, ", ")
}
