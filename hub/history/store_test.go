package history

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// counter is a deterministic epoch source: e1, e2, ...
func counter() func() string {
	n := 0
	return func() string { n++; return "e" + strconv.Itoa(n) }
}

const sec = int64(time.Second)

// offsets returns the offsets and data of r's entries, as "offset:data".
func offsets(r Read) []string {
	var s []string
	for _, e := range r.Entries {
		s = append(s, fmt.Sprintf("%d:%s", e.Offset, e.Data))
	}
	return s
}

func TestStoreOffsetsAndReads(t *testing.T) {
	st := NewStore(1<<20, counter())
	opt := Options{Size: 3, TTL: time.Minute}
	buf := []byte("x")
	for i := range 5 {
		buf[0] = byte('a' + i) // the store copies: the caller reuses its buffer
		pos := st.Append("ch", buf, opt, 0)
		if pos != (Position{Offset: uint64(i + 1), Epoch: "e1"}) {
			t.Fatalf("append %d: %+v", i, pos)
		}
	}
	st.Append("other", []byte("z"), opt, 0)
	for _, c := range []struct {
		since uint64
		limit int
		want  string
	}{
		{0, 10, "[3:c 4:d 5:e]"}, // the newest Size
		{3, 10, "[4:d 5:e]"},
		{3, 1, "[4:d]"},
		{5, 10, "[]"},
		{9, 10, "[]"},
		{0, 0, "[]"}, // the position only
	} {
		r := st.Read("ch", c.since, c.limit, 0, nil)
		if got := fmt.Sprint(offsets(r)); got != c.want || r.Pos != (Position{5, "e1"}) {
			t.Errorf("Read(since %d, limit %d) = %s at %+v, want %s at {5 e1}", c.since, c.limit, got, r.Pos, c.want)
		}
	}
	if r := st.Read("nothing", 0, 10, 0, nil); r.Pos != (Position{}) || len(r.Entries) != 0 {
		t.Errorf("missing stream reads %+v", r)
	}
}

func TestStoreReadReusesBuffer(t *testing.T) {
	st := NewStore(1<<20, counter())
	for range 4 {
		st.Append("ch", []byte("1"), Options{Size: 4}, 0)
	}
	buf := make([]Entry, 0, 4)
	allocs := testing.AllocsPerRun(100, func() { buf = st.Read("ch", 0, 4, 0, buf).Entries })
	if allocs != 0 || len(buf) != 4 {
		t.Errorf("Read into a buffer: %v allocs, %d entries", allocs, len(buf))
	}
}

func TestStoreTTL(t *testing.T) {
	st := NewStore(1<<20, counter())
	opt := Options{Size: 10, TTL: 10 * time.Second}
	st.Append("a", []byte("1"), opt, 0)
	st.Append("a", []byte("2"), opt, 8*sec) // a now lives until 18s
	st.Append("b", []byte("1"), opt, 0)
	st.Append("c", []byte("1"), opt, 1*sec)
	st.Append("forever", []byte("1"), Options{Size: 10}, 0)

	// Lazily: a read after the TTL finds nothing, and the stream is gone.
	if r := st.Read("b", 0, 10, 10*sec, nil); r.Pos != (Position{}) || st.Len() != 3 {
		t.Fatalf("expired b reads %+v, %d streams left", r, st.Len())
	}
	// Swept, with bounded work: a's first deadline is stale (one step to
	// refresh it), c is due.
	if more := st.Sweep(12*sec, 1); !more || st.Len() != 3 {
		t.Fatalf("Sweep with 1 step: more %v, %d streams", more, st.Len())
	}
	if more := st.Sweep(12*sec, 10); more || st.Len() != 2 {
		t.Fatalf("Sweep: more %v, %d streams", more, st.Len())
	}
	if r := st.Read("a", 0, 10, 12*sec, nil); fmt.Sprint(offsets(r)) != "[1:1 2:2]" {
		t.Fatalf("a, published again before its TTL, lost %v", offsets(r))
	}
	// A recreated stream starts again at 1, in a new epoch.
	if pos := st.Append("c", []byte("1"), opt, 12*sec); pos != (Position{1, "e5"}) {
		t.Fatalf("recreated c at %+v", pos)
	}
	st.Sweep(100*sec, 10)
	if st.Len() != 1 || st.Read("forever", 0, 0, 100*sec, nil).Pos.Offset != 1 {
		t.Fatalf("after every TTL: %d streams", st.Len())
	}
	// A shorter TTL takes effect at once.
	st.Append("a", []byte("1"), Options{Size: 10, TTL: time.Hour}, 100*sec)
	st.Append("a", []byte("2"), Options{Size: 10, TTL: time.Second}, 100*sec)
	if st.Sweep(102*sec, 10); st.Len() != 1 {
		t.Fatalf("a with its TTL shortened is still there: %d streams", st.Len())
	}
}

// cost recomputes what the store should count.
func (st *Store) cost() int64 {
	var n int64
	for _, s := range st.streams {
		n += s.cost()
	}
	return n
}

func TestStoreBudgetEvictsGloballyOldest(t *testing.T) {
	st := NewStore(4096, counter())
	opt := Options{Size: 100}
	data := make([]byte, 100)
	for range 10 {
		st.Append("old", data, opt, 0)
	}
	partial := false
	for i := 0; ; i++ {
		pos := st.Append("new", data, opt, 0)
		if st.Bytes() > 4096 || st.Bytes() != st.cost() {
			t.Fatalf("append %d: %d bytes counted, %d held, budget 4096", i, st.Bytes(), st.cost())
		}
		if pos.Epoch != "e2" {
			t.Fatalf("new lost its own entries (%+v) while old still had some", pos)
		}
		r := st.Read("old", 0, 100, 0, nil)
		if r.Pos.Epoch != "e1" {
			break
		}
		if len(r.Entries) < 10 {
			partial = partial || len(r.Entries) > 0
			// old's oldest went first; it keeps its offsets and epoch.
			if r.Pos != (Position{10, "e1"}) || len(r.Entries) > 0 && r.Entries[len(r.Entries)-1].Offset != 10 {
				t.Fatalf("old after eviction: %v at %+v", offsets(r), r.Pos)
			}
			if Recovered(0, "e1", true, r, 100) {
				t.Fatalf("recovery through an eviction")
			}
		}
	}
	if !partial {
		t.Fatal("old went wholly at once: no eviction of its oldest entries alone")
	}
	// old was evicted wholly: it is gone, and comes back in a new epoch.
	if pos := st.Append("old", data, opt, 0); pos != (Position{1, "e3"}) {
		t.Fatalf("old recreated at %+v", pos)
	}
}

func TestStoreTooLargeForTheBudget(t *testing.T) {
	st := NewStore(1000, counter())
	st.Append("a", []byte("1"), Options{Size: 10}, 0)
	if pos := st.Append("a", make([]byte, 1000), Options{Size: 10}, 0); pos != (Position{2, "e1"}) {
		t.Fatalf("a publication too large to keep: %+v", pos)
	}
	if st.Len() != 0 || st.Bytes() != 0 {
		t.Fatalf("%d streams, %d bytes after a publication too large to keep", st.Len(), st.Bytes())
	}
	if pos := st.Append("a", []byte("1"), Options{Size: 10}, 0); pos != (Position{1, "e2"}) {
		t.Fatalf("next publication at %+v, want a new epoch", pos)
	}
}

func TestStoreOffsetLimit(t *testing.T) {
	st := NewStore(1<<20, counter())
	st.Append("a", []byte("1"), Options{Size: 2}, 0)
	st.streams["a"].top = MaxOffset - 1
	if pos := st.Append("a", []byte("2"), Options{Size: 2}, 0); pos != (Position{MaxOffset, "e1"}) {
		t.Fatalf("last offset: %+v", pos)
	}
	if pos := st.Append("a", []byte("3"), Options{Size: 2}, 0); pos != (Position{1, "e2"}) {
		t.Fatalf("after the last offset: %+v", pos)
	}
}

// TestStoreModel checks the store against a model, which keeps every
// publication, through random appends (sizes that make arenas wrap and
// grow), reads, expiries and evictions: what the store reads must always
// be the newest of the model's publications, ending at the top, and its
// counting must match what it holds, within the budget.
func TestStoreModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const budget = 64 << 10
	st := NewStore(budget, counter())
	type model struct {
		epoch string
		pubs  []string
	}
	models := map[string]*model{}
	now := int64(0)
	var buf []Entry
	for i := range 50000 {
		now += rng.Int64N(sec / 10)
		ch := "ch" + strconv.Itoa(rng.IntN(40))
		opt := Options{Size: 1 + rng.IntN(30), TTL: time.Duration(1+rng.IntN(20)) * time.Second}
		switch rng.IntN(10) {
		case 0:
			st.Sweep(now, 3)
		case 1, 2:
			m := models[ch]
			r := st.Read(ch, uint64(rng.IntN(40)), rng.IntN(40), now, buf)
			buf = r.Entries
			if m == nil || r.Pos.Epoch != m.epoch {
				if r.Pos.Offset != 0 && m != nil && r.Pos.Epoch == m.epoch {
					t.Fatalf("step %d: %s", i, ch)
				}
				delete(models, ch) // lost: a later publication starts anew
				continue
			}
			if r.Pos.Offset != uint64(len(m.pubs)) {
				t.Fatalf("step %d: %s at %d, model has %d", i, ch, r.Pos.Offset, len(m.pubs))
			}
			for j, e := range r.Entries {
				if string(e.Data) != m.pubs[e.Offset-1] || j > 0 && e.Offset != r.Entries[j-1].Offset+1 {
					t.Fatalf("step %d: %s entry %d: %q, model %q", i, ch, e.Offset, e.Data, m.pubs[e.Offset-1])
				}
			}
		default:
			data := []byte(strconv.Itoa(i) + string(make([]byte, rng.IntN(300))))
			pos := st.Append(ch, data, opt, now)
			m := models[ch]
			if m == nil || pos.Epoch != m.epoch {
				m = &model{epoch: pos.Epoch}
				models[ch] = m
			}
			m.pubs = append(m.pubs, string(data))
			if pos.Offset != uint64(len(m.pubs)) {
				t.Fatalf("step %d: %s published at %d, model has %d", i, ch, pos.Offset, len(m.pubs))
			}
		}
		if st.Bytes() > budget || st.Bytes() != st.cost() {
			t.Fatalf("step %d: %d bytes counted, %d held, budget %d", i, st.Bytes(), st.cost(), budget)
		}
	}
}
