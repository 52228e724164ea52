package history

import "testing"

func entries(offsets ...uint64) []Entry {
	es := make([]Entry, len(offsets))
	for i, o := range offsets {
		es[i] = Entry{Offset: o, Data: []byte("1")}
	}
	return es
}

func TestRecovered(t *testing.T) {
	at := func(top uint64, offsets ...uint64) Read {
		return Read{Pos: Position{Offset: top, Epoch: "e"}, Entries: entries(offsets...)}
	}
	for _, c := range []struct {
		name     string
		since    uint64
		epoch    string
		hasEpoch bool
		r        Read
		max      int
		want     bool
	}{
		{"up to date", 5, "e", true, at(5), 10, true},
		{"up to date, no epoch", 5, "", false, at(5), 10, true},
		{"empty stream from 0", 0, "e", true, at(0), 10, true},
		{"missed some", 3, "e", true, at(5, 4, 5), 10, true},
		{"missed all from the start", 0, "", false, at(3, 1, 2, 3), 3, true},
		{"other epoch", 3, "old", true, at(5, 4, 5), 10, false},
		{"other epoch even when up to date", 5, "old", true, at(5), 10, false},
		{"since ahead of the stream", 6, "e", true, at(5), 10, false},
		{"since from a lost stream, no epoch", 7, "", false, at(0), 10, false},
		{"more than max", 3, "e", true, at(5, 4, 5), 1, false},
		{"exactly max", 3, "e", true, at(5, 4, 5), 2, true},
		{"max 0 and behind", 4, "e", true, at(5, 5), 0, false},
		{"evicted: first entry after since+1", 2, "e", true, at(5, 4, 5), 10, false},
		{"read short of the top", 3, "e", true, at(5, 4), 10, false},
		{"a hole", 2, "e", true, at(5, 3, 5, 5), 10, false},
		{"entries that are not since+1..top", 3, "e", true, at(5, 5, 6), 10, false},
		{"negative max", 5, "e", true, at(5), -1, false},
	} {
		if got := Recovered(c.since, c.epoch, c.hasEpoch, c.r, c.max); got != c.want {
			t.Errorf("%s: Recovered = %v, want %v", c.name, got, c.want)
		}
	}
}
