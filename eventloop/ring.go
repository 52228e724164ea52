package eventloop

import "github.com/wshub/wshub/wsproto"

// minRingSlots is the smallest ring: most deliveries leave one or two frames
// per connection per batch, and a ring only lives until the batch is written.
const minRingSlots = 8

// ringFreeBytes caps the slot memory each size class may keep on a loop's
// free list (beyond that, drained rings go to the GC).
const ringFreeBytes = 2 << 20

// ring is the FIFO of frames queued for one connection. Its size is a power
// of two; it grows by moving to the next size class when full (up to the
// class that holds SendQueue plus a close frame).
type ring struct {
	buf   []*wsproto.Frame
	head  uint32
	n     uint32
	class uint8
}

func (r *ring) mask() uint32 { return uint32(len(r.buf) - 1) }

func (r *ring) push(f *wsproto.Frame) {
	r.buf[(r.head+r.n)&r.mask()] = f
	r.n++
}

func (r *ring) front() *wsproto.Frame { return r.buf[r.head] }

func (r *ring) pop() *wsproto.Frame {
	f := r.buf[r.head]
	r.buf[r.head] = nil
	r.head = (r.head + 1) & r.mask()
	r.n--
	return f
}

// ringPool is a loop's free list of rings by size class, so that a
// connection holds a ring only while it has frames queued and getting one
// back costs no allocation. Loop goroutine only.
type ringPool struct {
	free  [][]*ring // free[k]: empty rings of minRingSlots<<k slots
	limit []int     // most rings free[k] keeps
}

// init prepares classes up to the first one holding at least maxSlots.
func (p *ringPool) init(maxSlots int) {
	classes := 1
	for minRingSlots<<(classes-1) < maxSlots {
		classes++
	}
	p.free = make([][]*ring, classes)
	p.limit = make([]int, classes)
	for k := range p.limit {
		p.limit[k] = max(16, ringFreeBytes/(8*(minRingSlots<<k)))
	}
}

func (p *ringPool) get(class int) *ring {
	if n := len(p.free[class]); n > 0 {
		r := p.free[class][n-1]
		p.free[class][n-1] = nil
		p.free[class] = p.free[class][:n-1]
		return r
	}
	return &ring{buf: make([]*wsproto.Frame, minRingSlots<<class), class: uint8(class)}
}

// put takes back an empty ring.
func (p *ringPool) put(r *ring) {
	r.head, r.n = 0, 0
	if len(p.free[r.class]) < p.limit[r.class] {
		p.free[r.class] = append(p.free[r.class], r)
	}
}

// grow moves a full ring's frames, in order, into a ring of the next class;
// false when r is already of the largest class.
func (p *ringPool) grow(r *ring) (*ring, bool) {
	if int(r.class)+1 >= len(p.free) {
		return r, false
	}
	bigger := p.get(int(r.class) + 1)
	for r.n > 0 {
		bigger.push(r.pop())
	}
	p.put(r)
	return bigger, true
}
