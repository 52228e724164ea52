package history

// streamHeap is a min-heap of streams. Its keys may be stale but only ever
// low: a stream's true key (its oldest entry's seq, its deadline) only
// grows, so the store updates keys lazily, when a stale one reaches the
// top, instead of on every append. A key that must go down is set at once.
type streamHeap struct {
	items []heapItem
	which int // the index in stream.idx this heap keeps
}

type heapItem struct {
	key int64
	s   *stream
}

func (h *streamHeap) len() int { return len(h.items) }

func (h *streamHeap) has(s *stream) bool { return s.idx[h.which] >= 0 }

// top returns the stream with the smallest key, and that key.
func (h *streamHeap) top() (*stream, int64) { return h.items[0].s, h.items[0].key }

func (h *streamHeap) push(s *stream, key int64) {
	h.items = append(h.items, heapItem{key, s})
	s.idx[h.which] = len(h.items) - 1
	h.up(len(h.items) - 1)
}

func (h *streamHeap) remove(s *stream) {
	i := s.idx[h.which]
	last := len(h.items) - 1
	h.swap(i, last)
	h.items[last] = heapItem{}
	h.items = h.items[:last]
	s.idx[h.which] = -1
	if i < last {
		h.up(i)
		h.down(i)
	}
}

// setKey changes s's key.
func (h *streamHeap) setKey(s *stream, key int64) {
	i := s.idx[h.which]
	h.items[i].key = key
	h.up(i)
	h.down(i)
}

// key returns s's key in the heap.
func (h *streamHeap) key(s *stream) int64 { return h.items[s.idx[h.which]].key }

func (h *streamHeap) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].s.idx[h.which] = i
	h.items[j].s.idx[h.which] = j
}

func (h *streamHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h.items[p].key <= h.items[i].key {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *streamHeap) down(i int) {
	for {
		c := 2*i + 1
		if c >= len(h.items) {
			return
		}
		if c+1 < len(h.items) && h.items[c+1].key < h.items[c].key {
			c++
		}
		if h.items[i].key <= h.items[c].key {
			return
		}
		h.swap(i, c)
		i = c
	}
}
