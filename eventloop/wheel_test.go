package eventloop

import (
	"math/rand"
	"slices"
	"testing"
)

// fakeTimers is a set of timers and a record of when each fired.
type fakeTimers struct {
	ts    []timer
	fired map[*timer][]int64
	now   int64
}

func newFakeTimers(n int) *fakeTimers {
	return &fakeTimers{ts: make([]timer, n), fired: map[*timer][]int64{}}
}

func (f *fakeTimers) fire(t *timer) { f.fired[t] = append(f.fired[t], f.now) }

func (f *fakeTimers) advance(w *wheel, to int64, fire func(*timer)) {
	f.now = to
	w.advance(to, fire)
}

func TestWheelFiresAtDueTick(t *testing.T) {
	var w wheel
	w.init(8, 100)
	f := newFakeTimers(4)
	w.schedule(&f.ts[0], 101)
	w.schedule(&f.ts[1], 105)
	w.schedule(&f.ts[2], 100+8+3) // more than one revolution away
	w.schedule(&f.ts[3], 50)      // in the past: next tick
	for tick := int64(101); tick <= 120; tick++ {
		f.advance(&w, tick, f.fire)
	}
	want := map[int][]int64{0: {101}, 1: {105}, 2: {111}, 3: {101}}
	for i, ticks := range want {
		if got := f.fired[&f.ts[i]]; !slices.Equal(got, ticks) {
			t.Errorf("timer %d fired at %v, want %v", i, got, ticks)
		}
		if f.ts[i].linked() {
			t.Errorf("timer %d still linked after firing", i)
		}
	}
}

func TestWheelCancelAndReschedule(t *testing.T) {
	var w wheel
	w.init(16, 0)
	f := newFakeTimers(3)
	w.schedule(&f.ts[0], 5)
	w.schedule(&f.ts[1], 5)
	w.schedule(&f.ts[2], 5)
	w.cancel(&f.ts[1])
	w.cancel(&f.ts[1]) // idempotent
	w.schedule(&f.ts[2], 9)
	for tick := int64(1); tick <= 20; tick++ {
		f.advance(&w, tick, f.fire)
	}
	if got := f.fired[&f.ts[0]]; !slices.Equal(got, []int64{5}) {
		t.Errorf("timer 0 fired at %v", got)
	}
	if got := f.fired[&f.ts[1]]; got != nil {
		t.Errorf("cancelled timer fired at %v", got)
	}
	if got := f.fired[&f.ts[2]]; !slices.Equal(got, []int64{9}) {
		t.Errorf("rescheduled timer fired at %v", got)
	}
}

// A loop that stalls for several revolutions fires everything overdue once.
func TestWheelLongJump(t *testing.T) {
	var w wheel
	w.init(8, 0)
	f := newFakeTimers(20)
	for i := range f.ts {
		w.schedule(&f.ts[i], int64(1+i*3)) // spread over 7 revolutions
	}
	f.advance(&w, 30, f.fire)
	for i := range f.ts {
		at := int64(1 + i*3)
		got := f.fired[&f.ts[i]]
		if at <= 30 && len(got) != 1 || at > 30 && got != nil {
			t.Errorf("timer due at %d: fired %v after jumping to 30", at, got)
		}
	}
	f.advance(&w, 100, f.fire)
	for i := range f.ts {
		if len(f.fired[&f.ts[i]]) != 1 {
			t.Errorf("timer %d fired %d times", i, len(f.fired[&f.ts[i]]))
		}
	}
}

// fire may reschedule the timer it got and cancel others that are due in the
// same tick, as a connection does when it sends a ping or closes.
func TestWheelReentrantFire(t *testing.T) {
	var w wheel
	w.init(8, 0)
	f := newFakeTimers(3)
	for i := range f.ts {
		w.schedule(&f.ts[i], 2)
	}
	fire := func(tm *timer) {
		f.fire(tm)
		switch tm {
		case &f.ts[0]:
			w.cancel(&f.ts[1]) // due in the same tick, not fired yet
			w.schedule(tm, f.now+4)
		}
	}
	for tick := int64(1); tick <= 7; tick++ {
		f.advance(&w, tick, fire)
	}
	if got := f.fired[&f.ts[0]]; !slices.Equal(got, []int64{2, 6}) {
		t.Errorf("rescheduling timer fired at %v", got)
	}
	if got := f.fired[&f.ts[1]]; got != nil {
		t.Errorf("timer cancelled by a sibling fired at %v", got)
	}
	if got := f.fired[&f.ts[2]]; !slices.Equal(got, []int64{2}) {
		t.Errorf("timer 2 fired at %v", got)
	}
}

// Random schedules against a brute-force model.
func TestWheelMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var w wheel
	w.init(32, 0)
	f := newFakeTimers(200)
	due := map[*timer]int64{}
	for tick := int64(1); tick <= 2000; tick++ {
		for range 5 {
			tm := &f.ts[rng.Intn(len(f.ts))]
			if rng.Intn(4) == 0 {
				w.cancel(tm)
				delete(due, tm)
				continue
			}
			at := tick + int64(rng.Intn(150))
			w.schedule(tm, at)
			if at < tick {
				at = tick
			}
			due[tm] = at
		}
		f.fired = map[*timer][]int64{}
		step := tick + int64(rng.Intn(3)) // sometimes skip ticks
		f.advance(&w, step, f.fire)
		expected := 0
		for tm, at := range due {
			if at <= step {
				if got := f.fired[tm]; len(got) != 1 {
					t.Fatalf("tick %d: timer due at %d fired %v", step, at, got)
				}
				delete(due, tm)
				expected++
			}
		}
		if len(f.fired) != expected {
			t.Fatalf("tick %d: %d timers fired, %d were due", step, len(f.fired), expected)
		}
		tick = step
	}
}
