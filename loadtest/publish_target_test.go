package loadtest

import (
	"strings"
	"testing"
	"time"

	"github.com/wshub/wshub/bench/refhub"
	"github.com/wshub/wshub/loadtest/testserver"
)

// startInstance serves h's handler on a free port until the test ends.
func startInstance(t *testing.T, h *refhub.Hub) *testserver.Instance {
	t.Helper()
	in := testserver.StartInstance(h.Handler())
	t.Cleanup(in.Stop)
	return in
}

func startHub(t *testing.T) *refhub.Hub {
	t.Helper()
	h := refhub.New()
	go h.Run()
	t.Cleanup(h.Stop)
	return h
}

// TestPublishTargetsCarryThePublishers: subscribers spread over A1 and A2,
// publishers over B1 and B2, all four in front of one hub: each connection
// lands where it should and every publication reaches every subscriber.
func TestPublishTargetsCarryThePublishers(t *testing.T) {
	h := startHub(t)
	a1, a2, b1, b2 := startInstance(t, h), startInstance(t, h), startInstance(t, h), startInstance(t, h)
	res := runLocal(t, Config{
		Scenario: ScenarioFanout, Targets: []string{a1.Addr, a2.Addr}, PublishTargets: []string{b1.Addr, b2.Addr},
		Pollers: 2, Subs: 20, Channels: 2, Publishers: 2, Msgs: 200, Size: 100, Duration: 10 * time.Second, Drain: 3 * time.Second,
	})
	if got := [4]int64{a1.Conns(), a2.Conns(), b1.Conns(), b2.Conns()}; got != [4]int64{10, 10, 1, 1} {
		t.Fatalf("connections on A1 A2 B1 B2: %v, want [10 10 1 1]", got)
	}
	// 200 publications over 2 channels with 10 subscribers each.
	if res.Connected != 22 || res.Published != 200 || res.Expected != 2000 || res.Delivered != 2000 {
		t.Fatalf("connected %d published %d expected %d delivered %d, want 22/200/2000/2000", res.Connected, res.Published, res.Expected, res.Delivered)
	}
	if res.Lost+res.Duplicates+res.Reordered+res.Errors != 0 {
		t.Fatalf("lost %d dups %d reordered %d errors %v", res.Lost, res.Duplicates, res.Reordered, res.ErrorsByKind)
	}
}

// TestPublishTargetOnAnotherHubLosesEverything: the publisher's instance
// is not joined to the subscribers' one, so every publication is accepted
// there and counted lost here, exactly.
func TestPublishTargetOnAnotherHubLosesEverything(t *testing.T) {
	a, b := startInstance(t, startHub(t)), startInstance(t, startHub(t))
	res := runLocal(t, Config{
		Scenario: ScenarioFanout, Targets: []string{a.Addr}, PublishTargets: []string{b.Addr},
		Subs: 6, Channels: 3, Publishers: 1, Msgs: 90, Rate: 1000, Duration: 10 * time.Second, Drain: time.Second,
	})
	if a.Conns() != 6 || b.Conns() != 1 {
		t.Fatalf("connections on A %d, on B %d, want 6 and 1", a.Conns(), b.Conns())
	}
	if res.Published != 90 || res.Rejected != 0 || res.Expected != 180 || res.Delivered != 0 || res.Lost != 180 {
		t.Fatalf("published %d rejected %d expected %d delivered %d lost %d, want 90/0/180/0/180", res.Published, res.Rejected, res.Expected, res.Delivered, res.Lost)
	}
}

func TestPublishTargetsValidation(t *testing.T) {
	for _, c := range []Config{
		{Scenario: ScenarioIdle, Conns: 1, Targets: []string{"127.0.0.1:1"}, PublishTargets: []string{"127.0.0.1:2"}},
		{Scenario: ScenarioFanout, Subs: 1, Targets: []string{"127.0.0.1:1"}, PublishTargets: []string{"127.0.0.1:2"}, PublishHTTP: "127.0.0.1:3"},
	} {
		c.Defaults()
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--publish-target") {
			t.Errorf("%s with publish targets %v and publish-http %q: error %v", c.Scenario, c.PublishTargets, c.PublishHTTP, err)
		}
	}
	_, err := newEngine(&Config{Targets: []string{"127.0.0.1:1"}, PublishTargets: []string{"nonsense"}, Channels: 1})
	if err == nil || !strings.Contains(err.Error(), "nonsense") {
		t.Errorf("bad publish target: %v", err)
	}
}
