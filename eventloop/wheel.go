package eventloop

// timer is an intrusive node of a wheel: it lives inside the object it times
// (a Conn), so arming, moving and cancelling a deadline never allocates.
type timer struct {
	next, prev *timer // nil when not scheduled
	at         int64  // tick at which it fires
}

func (t *timer) linked() bool { return t.next != nil }

func (t *timer) unlink() {
	t.prev.next = t.next
	t.next.prev = t.prev
	t.next, t.prev = nil, nil
}

// pushBack links t before the sentinel head (at the tail of its list).
func (t *timer) pushBack(head *timer) {
	t.prev = head.prev
	t.next = head
	head.prev.next = t
	head.prev = t
}

// wheel is a hashed timing wheel of power-of-two size: a timer due at tick
// `at` waits in slot at&mask, and timers further than one revolution away
// are simply skipped until their revolution comes. Scheduling and cancelling
// are O(1); advancing costs one slot per elapsed tick. It is driven by its
// owner (one per event loop, on the loop's goroutine) and is not safe for
// concurrent use.
type wheel struct {
	slots   []timer // circular list sentinels
	expired timer   // due timers being fired; survives reentrant cancels
	mask    int64
	now     int64 // last tick processed
}

// init sizes the wheel to at least n slots, starting at tick now.
func (w *wheel) init(n int, now int64) {
	size := 1
	for size < n {
		size <<= 1
	}
	w.slots = make([]timer, size)
	for i := range w.slots {
		s := &w.slots[i]
		s.next, s.prev = s, s
	}
	w.expired.next, w.expired.prev = &w.expired, &w.expired
	w.mask = int64(size - 1)
	w.now = now
}

// schedule (re)arms t to fire at tick at; a tick already processed fires on
// the next advance.
func (w *wheel) schedule(t *timer, at int64) {
	if t.linked() {
		t.unlink()
	}
	if at <= w.now {
		at = w.now + 1
	}
	t.at = at
	t.pushBack(&w.slots[at&w.mask])
}

// cancel disarms t; a timer that is not scheduled is left alone.
func (w *wheel) cancel(t *timer) {
	if t.linked() {
		t.unlink()
	}
}

// advance processes every tick up to and including now, calling fire for
// each due timer, already unlinked. fire may schedule or cancel any timer,
// including the one it was given.
func (w *wheel) advance(now int64, fire func(*timer)) {
	if now <= w.now {
		return
	}
	from := w.now + 1
	if now-w.now > int64(len(w.slots)) {
		from = now - int64(len(w.slots)) + 1 // one revolution visits every slot
	}
	w.now = now
	for tick := from; tick <= now; tick++ {
		head := &w.slots[tick&w.mask]
		for t := head.next; t != head; {
			next := t.next
			if t.at <= now {
				t.unlink()
				t.pushBack(&w.expired)
			}
			t = next
		}
	}
	// Fire from a list the wheel owns, so that fire cancelling or
	// rescheduling other due timers cannot break the iteration.
	for w.expired.next != &w.expired {
		t := w.expired.next
		t.unlink()
		fire(t)
	}
}
