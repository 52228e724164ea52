package hub

// LocalConn is one local connection as a Registrar's walk sees it.
type LocalConn struct {
	N           uint64 // ConnID is "<instance>.<N>"
	User        string // "" when anonymous
	ConnectedAt int64  // unix ms, to the second (as Registrar.Opened was told)
}

// LocalConns is the hub's record of its listed connections (those the
// Registrar was told about), for a Registrar to walk instead of keeping a
// record of its own. Safe for concurrent use, except that Next has one
// caller at a time.
type LocalConns interface {
	// Len is the number of connections.
	Len() int
	// Has reports whether connection n is there.
	Has(n uint64) bool
	// Next appends up to max connections from the walk's cursor on and
	// moves the cursor past them; wrapped reports that the cursor went
	// back to the start (the call stopped there). The calls of a round,
	// from one start to the next, meet every connection that was there
	// all along at least once; connections come and go meanwhile.
	Next(buf []LocalConn, max int) (out []LocalConn, wrapped bool)
	// Parts is how many parts Part reads: together, every connection.
	Parts() int
	// Part appends the connections of part i, read at one instant.
	Part(buf []LocalConn, i int) []LocalConn
}

var _ LocalConns = (*connIndex)(nil)

// local is cs as a walk sees it: only what never changes while it is listed.
func (x *connIndex) local(cs *connData) LocalConn {
	return LocalConn{N: cs.conn.ID(), User: cs.user(), ConnectedAt: x.connectedAt(cs)}
}

// Len implements LocalConns.
func (x *connIndex) Len() int {
	n := 0
	for i := range x.stripes {
		sh := &x.stripes[i]
		sh.mu.Lock()
		n += sh.set.n
		sh.mu.Unlock()
	}
	return n
}

// Has implements LocalConns.
func (x *connIndex) Has(n uint64) bool { return x.get(n) != nil }

// Next implements LocalConns: stripe by stripe, each from its connSet.walk
// to its end.
func (x *connIndex) Next(buf []LocalConn, max int) ([]LocalConn, bool) {
	for range len(x.stripes) {
		if max <= 0 {
			break
		}
		sh := &x.stripes[x.cur]
		sh.mu.Lock()
		t := &sh.set
		for ; t.walk < len(t.slots) && max > 0; t.walk++ {
			if cs := t.slots[t.walk]; cs != nil {
				buf = append(buf, x.local(cs))
				max--
			}
		}
		done := t.walk >= len(t.slots)
		if done {
			t.walk = 0
		}
		sh.mu.Unlock()
		if !done {
			break
		}
		if x.cur = (x.cur + 1) % len(x.stripes); x.cur == 0 {
			return buf, true // the next round starts with the next call
		}
	}
	return buf, false
}

// Parts implements LocalConns.
func (x *connIndex) Parts() int { return len(x.stripes) }

// Part implements LocalConns: stripe i.
func (x *connIndex) Part(buf []LocalConn, i int) []LocalConn {
	sh := &x.stripes[i]
	sh.mu.Lock()
	for _, cs := range sh.set.slots {
		if cs != nil {
			buf = append(buf, x.local(cs))
		}
	}
	sh.mu.Unlock()
	return buf
}
