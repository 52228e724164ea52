package redis

import (
	"maps"
	"reflect"
	"testing"
)

// slotsOf is a slot map owned by def, except the slots of the channels named
// in pairs (channel, master; master "" leaves the slot without one).
func slotsOf(def string, pairs ...string) *slotMap {
	m := new(slotMap)
	for i := range m {
		m[i] = def
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		m[slotOf(pairs[i])] = pairs[i+1]
	}
	return m
}

// places is a broker's table as the slot plan sees it.
type places map[string]place

func (t places) where(ch string) (place, bool) {
	pl, ok := t[ch]
	return pl, ok
}

var (
	onA      = place{home: "A", wanted: true}
	onB      = place{home: "B", wanted: true}
	nowhere  = place{wanted: true}
	unneeded = place{home: "A"} // neither wanted nor waited for
)

func moves(ms ...move) []move { return ms }

func TestSlotPlanAdopt(t *testing.T) {
	p := newSlotPlan("t")
	p.install(slotsOf("A", "x", ""), maps.Keys(places{}), places{}.where)
	if to, refresh := p.adopt("y"); to != "A" || refresh {
		t.Fatalf("adopt(y) = %q, %v; want A, no refresh", to, refresh)
	}
	if to, refresh := p.adopt("x"); to != "" || !refresh {
		t.Fatalf("adopt(x) in a slot without master = %q, %v; want \"\", refresh", to, refresh)
	}
	if w := p.waiting(); !reflect.DeepEqual(w, []string{"x"}) {
		t.Fatalf("waiting = %v, want [x]", w)
	}
	p.forget("x")
	if w := p.waiting(); len(w) != 0 {
		t.Fatalf("waiting after forget = %v", w)
	}
}

func TestSlotPlanInstall(t *testing.T) {
	seen := make(map[uint16]string)
	for _, ch := range []string{"x", "y", "z", "a", "gone"} {
		if other, dup := seen[slotOf(ch)]; dup {
			t.Fatalf("%s and %s share a slot: the cases below assume they do not", ch, other)
		}
		seen[slotOf(ch)] = ch
	}
	for _, tc := range []struct {
		name        string
		before      *slotMap // installed first, on an empty table
		adopted     []string // adopted under before
		table       places
		m           *slotMap
		masters     []string
		moves       []move
		refresh     bool
		waitingThen []string
	}{
		{
			name:    "first map, no channels",
			before:  new(slotMap),
			table:   places{},
			m:       slotsOf("A", "x", "B"),
			masters: []string{"A", "B"},
		},
		{
			name:    "a slot moves: only its channels follow",
			before:  slotsOf("A"),
			table:   places{"x": onA, "y": onA, "z": unneeded},
			m:       slotsOf("A", "x", "B", "z", "B"),
			masters: []string{"A", "B"},
			moves:   moves(move{"x", "B"}, move{"z", "B"}),
		},
		{
			name:    "unchanged map, nothing waiting: nothing routed again",
			before:  slotsOf("A"),
			table:   places{"x": onB},
			m:       slotsOf("A"),
			masters: []string{"A"},
		},
		{
			name:        "unchanged map, still no master for a waiting channel",
			before:      slotsOf("A", "x", ""),
			adopted:     []string{"x"},
			table:       places{"x": nowhere},
			m:           slotsOf("A", "x", ""),
			masters:     []string{"A"},
			refresh:     true,
			waitingThen: []string{"x"},
		},
		{
			name:    "a waiting channel's slot gets a master",
			before:  slotsOf("A", "x", ""),
			adopted: []string{"x"},
			table:   places{"x": nowhere, "y": onA},
			m:       slotsOf("A", "x", "B"),
			masters: []string{"A", "B"},
			moves:   moves(move{"x", "B"}),
		},
		{
			name:    "a master leaves: its channels go to the new owners",
			before:  slotsOf("A", "x", "B", "y", "B"),
			table:   places{"x": onB, "y": {home: "B", waiting: true}, "a": onA},
			m:       slotsOf("A"),
			masters: []string{"A"},
			moves:   moves(move{"x", "A"}, move{"y", "A"}),
		},
		{
			name:        "a slot loses its master: needed channels wait, the others do not",
			before:      slotsOf("A"),
			table:       places{"x": onA, "z": unneeded},
			m:           slotsOf("A", "x", "", "z", ""),
			masters:     []string{"A"},
			moves:       moves(move{"x", ""}, move{"z", ""}),
			refresh:     true,
			waitingThen: []string{"x"},
		},
		{
			name:    "a waiting channel the broker no longer has is dropped",
			before:  slotsOf("A", "gone", ""),
			adopted: []string{"gone"},
			table:   places{},
			m:       slotsOf("A", "gone", ""),
			masters: []string{"A"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newSlotPlan("t")
			p.install(tc.before, maps.Keys(places{}), places{}.where)
			for _, ch := range tc.adopted {
				p.adopt(ch)
			}
			masters, mv, refresh := p.install(tc.m, maps.Keys(tc.table), tc.table.where)
			if !reflect.DeepEqual(masters, tc.masters) {
				t.Errorf("masters = %v, want %v", masters, tc.masters)
			}
			if !reflect.DeepEqual(mv, tc.moves) {
				t.Errorf("moves = %v, want %v", mv, tc.moves)
			}
			if refresh != tc.refresh {
				t.Errorf("refresh = %v, want %v", refresh, tc.refresh)
			}
			if w := p.waiting(); !reflect.DeepEqual(w, append([]string{}, tc.waitingThen...)) {
				t.Errorf("waiting = %v, want %v", w, tc.waitingThen)
			}
		})
	}
}

func TestSlotPlanRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		table   places
		movedTo string
		moves   []move
		waiting []string
	}{
		{"MOVED: to the named master", places{"x": onA}, "B", moves(move{"x", "B"}), nil},
		{"MOVED, but already elsewhere", places{"x": onB}, "C", nil, nil},
		{"MOVED, gone from the table", places{}, "B", nil, nil},
		{"other refusal: wait for the slot map", places{"x": onA}, "", moves(move{"x", ""}), []string{"x"}},
		{"other refusal, nobody needs it", places{"x": unneeded}, "", moves(move{"x", ""}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newSlotPlan("t")
			p.install(slotsOf("A"), maps.Keys(places{}), places{}.where)
			mv := p.refused("A", []string{"x"}, tc.movedTo, tc.table.where)
			if !reflect.DeepEqual(mv, tc.moves) {
				t.Errorf("moves = %v, want %v", mv, tc.moves)
			}
			if w := p.waiting(); !reflect.DeepEqual(w, append([]string{}, tc.waiting...)) {
				t.Errorf("waiting = %v, want %v", w, tc.waiting)
			}
			want := "A"
			if tc.movedTo != "" {
				want = tc.movedTo // learned until the next full map
			}
			if got := p.route("x"); got != want {
				t.Errorf("route(x) = %q, want %q", got, want)
			}
		})
	}
}

func TestSlotPlanDropped(t *testing.T) {
	for _, tc := range []struct {
		name  string
		table places
		ok    bool
	}{
		{"wanted on the dropping master: waits for the slot map", places{"x": onA}, true},
		{"only waited for (unsubscribed meanwhile): left to settle", places{"x": {home: "A", waiting: true}}, false},
		{"already on another master", places{"x": onB}, false},
		{"gone from the table", places{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newSlotPlan("t")
			p.install(slotsOf("A"), maps.Keys(places{}), places{}.where)
			mv, ok := p.dropped("A", "x", tc.table.where)
			if ok != tc.ok || ok && mv != (move{ch: "x"}) {
				t.Fatalf("dropped = %v, %v; want ok %v", mv, ok, tc.ok)
			}
			if w := p.waiting(); ok != (len(w) == 1) {
				t.Fatalf("waiting = %v", w)
			}
		})
	}
}

func TestSlotPlanProbeFor(t *testing.T) {
	p := newSlotPlan("t")
	m := new(slotMap)
	for i := range m {
		m[i] = "B"
	}
	for i := 100; i < 200; i++ {
		m[i] = "A"
	}
	p.install(m, maps.Keys(places{}), places{}.where)
	inA := probeChannel("t", tagForSlot(150))
	for _, tc := range []struct {
		addr, cur string
		slot      int // of the answer; -1: want ""
		same      bool
	}{
		{"A", "", 100, false}, // the first slot A owns
		{"A", inA, 150, true}, // still A's: kept
		{"B", inA, 0, false},  // not B's: B's first slot
		{"C", "", -1, false},  // owns nothing
		{"", "", -1, false},   // no master
	} {
		got := p.probeFor(tc.addr, tc.cur)
		switch {
		case tc.slot < 0 && got != "":
			t.Errorf("probeFor(%q, %q) = %q, want none", tc.addr, tc.cur, got)
		case tc.slot >= 0 && (got == "" || int(slotOf(got)) != tc.slot):
			t.Errorf("probeFor(%q, %q) = %q (slot %d), want slot %d", tc.addr, tc.cur, got, slotOf(got), tc.slot)
		case tc.same && got != tc.cur:
			t.Errorf("probeFor(%q, %q) = %q, want it kept", tc.addr, tc.cur, got)
		}
	}
}
