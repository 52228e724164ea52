package loadtest

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

const (
	readBufSize  = 256 << 10 // shared by all connections of a poller
	spareBufSize = 4 << 10   // pooled per-connection leftovers
	sweepEvery   = int64(100 * time.Millisecond)
	closeTimeout = int64(2 * time.Second)
)

// poller is one epoll loop holding many connections. Everything except
// post and the counters runs on its goroutine.
type poller struct {
	e      *engine
	id     int
	epfd   int
	evfd   int
	conns  []*conn // by fd
	events []unix.EpollEvent
	rbuf   []byte
	wbuf   []byte
	rng    *rand.Rand
	wall   int64 // unix ns of the latest read, the arrival time of what it brought

	mu     sync.Mutex
	tasks  []func()
	spareT []func()

	dialq     []dialReq
	dialing   int
	dialLimit int
	timers    timerHeap
	pubs      []*publisher
	lastSweep int64
	quit      bool

	ctr        counters
	lat        *Histogram // delivery latency, whole run
	latIv      *Histogram // delivery latency since the last progress snapshot
	hsLat      *Histogram // dial to 101
	subLat     *Histogram // subscribe to ok
	reconnLat  *Histogram // storm: connection lost to subscribed again
	closeCodes map[uint16]int64
	refused    map[uint16]int64 // refused upgrades by HTTP status
	agg        []chanAgg        // per channel, normal subscribers
	slowAgg    []chanAgg        // per channel, slow subscribers
	slowDrops  []slowDrop
	dMax       []int64      // per channel: growth of subscribers' highest sequence not yet added to engine.maxSum
	dirty      []int32      // channels with dMax != 0
	lastReady  int64        // monotonic ns of the latest connection to become ready
	lastRecv   int64        // unix ns of the latest read that brought a publication
	lostReady  atomic.Int64 // storm: ready connections lost
	spare      [][]byte
	z          inflater        // --compression: inflates every connection's compressed messages
	rec        *pollerRecover  // recover scenario only
	drop       *dropper        // recover, presence-churn: the scenario's drops
	pres       *pollerPresence // presence-churn only
}

// slowDrop is what a slow subscriber saw before the gateway dropped it.
type slowDrop struct {
	seen  int64 // monotonic ns when the close or reset was seen
	lastT int64 // publish time (unix ns) of the last message it received
	code  uint16
}

func newPoller(e *engine, id int) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, err
	}
	p := &poller{
		e: e, id: id, epfd: epfd, evfd: evfd,
		events:     make([]unix.EpollEvent, 512),
		rbuf:       make([]byte, readBufSize),
		wbuf:       make([]byte, 0, 64<<10),
		rng:        rand.New(rand.NewPCG(seed(), seed())),
		dialLimit:  max(1, e.cfg.ConnectConcurrency/max(1, e.cfg.Pollers)),
		lat:        NewHistogram(),
		latIv:      NewHistogram(),
		hsLat:      NewHistogram(),
		subLat:     NewHistogram(),
		reconnLat:  NewHistogram(),
		closeCodes: map[uint16]int64{},
		refused:    map[uint16]int64{},
		agg:        make([]chanAgg, e.cfg.Channels),
		slowAgg:    make([]chanAgg, e.cfg.Channels),
		dMax:       make([]int64, e.cfg.Channels),
	}
	if e.cfg.Compression {
		p.z.setMemo(memoFor(e.cfg.Window*e.cfg.Publishers, e.cfg.Size))
	}
	if e.cfg.Scenario == ScenarioRecover {
		p.rec = newPollerRecover(e.cfg)
		p.drop = &p.rec.dropper
	}
	if e.cfg.Scenario == ScenarioPresence {
		p.pres = newPollerPresence(p)
		p.drop = &p.pres.dropper
	}
	return p, nil
}

// post runs f on the poller's goroutine.
func (p *poller) post(f func()) {
	p.mu.Lock()
	p.tasks = append(p.tasks, f)
	p.mu.Unlock()
	var one [8]byte
	binary.LittleEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(p.evfd, one[:])
}

func (p *poller) runTasks() {
	p.mu.Lock()
	t := p.tasks
	p.tasks = p.spareT[:0]
	p.mu.Unlock()
	for i, f := range t {
		f()
		t[i] = nil
	}
	p.spareT = t
}

func (p *poller) run() {
	defer func() {
		unix.Close(p.epfd)
		unix.Close(p.evfd)
	}()
	var drain [8]byte
	for !p.quit {
		n, err := unix.EpollWait(p.epfd, p.events, p.timeout())
		if err != nil && err != unix.EINTR {
			panic("loadtest: epoll_wait: " + err.Error())
		}
		for i := 0; i < n; i++ {
			ev := p.events[i]
			if int(ev.Fd) == p.evfd {
				_, _ = unix.Read(p.evfd, drain[:])
				continue
			}
			if int(ev.Fd) < len(p.conns) {
				if c := p.conns[ev.Fd]; c != nil {
					p.handle(c, ev.Events)
				}
			}
		}
		p.flushMax()
		p.runTasks()
		p.tick()
	}
}

// flushMax publishes what this poller's subscribers received since the
// last flush, once per loop turn rather than one atomic per delivery.
func (p *poller) flushMax() {
	for _, ch := range p.dirty {
		p.e.maxSum[ch].Add(p.dMax[ch])
		p.dMax[ch] = 0
	}
	p.dirty = p.dirty[:0]
}

// timeout is how long epoll may sleep: publishers pace at 1 ms.
func (p *poller) timeout() int {
	if len(p.pubs) > 0 && p.e.publishing.Load() {
		return 1
	}
	ms := 100
	if len(p.timers) > 0 {
		d := (p.timers[0].at - p.e.now()) / int64(time.Millisecond)
		ms = int(max(0, min(d, 100)))
	}
	return p.queryTimeout(p.dropTimeout(ms))
}

func (p *poller) tick() {
	now := p.e.now()
	for len(p.timers) > 0 && p.timers[0].at <= now {
		t := heap.Pop(&p.timers).(timer)
		p.dialq = append(p.dialq, t.req)
	}
	p.dialQueued()
	if p.e.publishing.Load() {
		for _, pb := range p.pubs {
			pb.pump(p, now)
		}
	}
	if p.drop != nil {
		p.dropTick(now)
	}
	if p.pres != nil && p.pres.q != nil {
		p.queryTick(now)
	}
	if now-p.lastSweep >= sweepEvery {
		p.lastSweep = now
		p.sweep(now)
	}
}

// sweep fails connections stuck in a step longer than their deadline.
func (p *poller) sweep(now int64) {
	hto := int64(p.e.cfg.HandshakeTimeout)
	for _, c := range p.conns {
		if c == nil {
			continue
		}
		switch {
		case c.has(fClosing):
			if now-c.t0 > closeTimeout {
				p.release(c, true)
			}
		case c.st < stOpen, c.has(fSub) && !c.has(fReady):
			if now-c.t0 > hto {
				p.fail(c, errTimeout)
			}
		}
	}
}

// handle reacts to one epoll event.
func (p *poller) handle(c *conn, ev uint32) {
	if c.st == stConnecting {
		p.connected(c)
		return
	}
	if ev&unix.EPOLLOUT != 0 {
		p.flush(c)
		if c.st == stClosed {
			return
		}
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		if c.has(fPaused) && c.dropped == 0 {
			c.dropped = p.e.now()
		}
		p.readable(c)
	}
}

// dialQueued starts queued dials while under the in-flight cap.
func (p *poller) dialQueued() {
	for len(p.dialq) > 0 && p.dialing < p.dialLimit && !p.e.stopping.Load() {
		r := p.dialq[0]
		p.dialq = p.dialq[1:]
		if len(p.dialq) == 0 {
			p.dialq = nil
		}
		p.dial(r)
	}
}

// dial opens a non-blocking TCP connection to the request's target.
func (p *poller) dial(r dialReq) {
	c := &conn{ch: r.ch, idx: r.idx, target: r.target, flags: r.flags, attempt: r.attempt, since: r.since, pub: r.pub, rs: r.rs, user: r.user, t0: p.e.now()}
	if r.rs != nil {
		r.rs.c = c
	}
	p.dialing++
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		p.dialing--
		p.dialFailed(c, errConnect)
		return
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if c.has(fSlow) {
		// A small receive window makes the gateway's buffers fill, and its
		// slow-consumer protection trip, soon after the reader stops.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4096)
	}
	if len(p.e.srcIPs) > 0 {
		src := p.e.srcIPs[int(p.e.nextSrc.Add(1))%len(p.e.srcIPs)]
		// Pick the port at connect time, per destination, not at bind time.
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src}); err != nil {
			unix.Close(fd)
			p.dialing--
			p.dialFailed(c, errConnect)
			return
		}
	}
	c.fd = int32(fd)
	for fd >= len(p.conns) {
		p.conns = append(p.conns, make([]*conn, len(p.conns)+1024)...)
	}
	p.conns[fd] = c
	sa := p.e.targets[int(r.target)%len(p.e.targets)].sa
	err = unix.Connect(fd, &sa)
	if err != nil && err != unix.EINPROGRESS {
		p.fail(c, errConnect)
		return
	}
	c.flags |= fWantOut
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLOUT | unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
		p.fail(c, errConnect)
	}
}

// connected finishes the TCP connect and sends the upgrade request.
func (p *poller) connected(c *conn) {
	if v, err := unix.GetsockoptInt(int(c.fd), unix.SOL_SOCKET, unix.SO_ERROR); err != nil || v != 0 {
		p.fail(c, errConnect)
		return
	}
	c.st = stUpgrading
	key := randomKey()
	c.accept = acceptFor(key)
	t := p.e.targets[int(c.target)%len(p.e.targets)]
	p.wbuf = appendUpgradeRequest(p.wbuf[:0], t.host, t.uri, key, p.e.tokens.forConn(c.user), p.e.cfg.TokenHeader, p.e.cfg.Compression)
	p.setOut(c, false)
	p.write(c, p.wbuf)
}

// setOut turns EPOLLOUT interest on or off.
func (p *poller) setOut(c *conn, on bool) {
	if on == c.has(fWantOut) || c.st == stClosed {
		return
	}
	ev := uint32(unix.EPOLLRDHUP)
	if !c.has(fPaused) {
		ev |= unix.EPOLLIN
	}
	if on {
		ev |= unix.EPOLLOUT
		c.flags |= fWantOut
	} else {
		c.flags &^= fWantOut
	}
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(c.fd), &unix.EpollEvent{Events: ev, Fd: c.fd})
}

// setPaused stops or resumes reading c.
func (p *poller) setPaused(c *conn, paused bool) {
	if paused == c.has(fPaused) || c.st == stClosed {
		return
	}
	if paused {
		c.flags |= fPaused
	} else {
		c.flags &^= fPaused
	}
	ev := uint32(unix.EPOLLRDHUP)
	if !paused {
		ev |= unix.EPOLLIN
	}
	if c.has(fWantOut) {
		ev |= unix.EPOLLOUT
	}
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(c.fd), &unix.EpollEvent{Events: ev, Fd: c.fd})
}

// write sends b now, keeping what the socket does not take for EPOLLOUT.
func (p *poller) write(c *conn, b []byte) {
	if c.st == stClosed {
		return
	}
	if len(c.out) > 0 {
		c.out = append(c.out, b...)
		return
	}
	n, err := unix.Write(int(c.fd), b)
	if n < 0 {
		n = 0
	}
	if err != nil && err != unix.EAGAIN && err != unix.EINTR {
		p.lost(c)
		return
	}
	if n < len(b) {
		c.out = append(p.getBuf(), b[n:]...)
		p.setOut(c, true)
	}
}

// flush writes pending output once the socket has room.
func (p *poller) flush(c *conn) {
	if len(c.out) == 0 {
		p.setOut(c, false)
		return
	}
	n, err := unix.Write(int(c.fd), c.out)
	if err != nil && err != unix.EAGAIN && err != unix.EINTR {
		p.lost(c)
		return
	}
	if n > 0 {
		rest := copy(c.out, c.out[n:])
		c.out = c.out[:rest]
	}
	if len(c.out) == 0 {
		p.putBuf(c.out)
		c.out = nil
		p.setOut(c, false)
	}
}

// readable reads once (level-triggered epoll calls again while data waits).
func (p *poller) readable(c *conn) {
	n, err := unix.Read(int(c.fd), p.rbuf)
	if n <= 0 {
		if err == unix.EAGAIN || err == unix.EINTR {
			return
		}
		p.lost(c)
		return
	}
	p.wall = time.Now().UnixNano()
	data := p.rbuf[:n]
	buffered := len(c.in) > 0 || c.st == stUpgrading
	if buffered {
		if c.in == nil {
			c.in = p.getBuf()
		}
		c.in = append(c.in, data...)
		data = c.in
	}
	used := p.consume(c, data)
	if c.st == stClosed {
		return
	}
	rest := len(data) - used
	switch {
	case rest == 0:
		p.putBuf(c.in)
		c.in = nil
	case buffered:
		copy(c.in, data[used:])
		c.in = c.in[:rest]
	default:
		c.in = append(p.getBuf(), data[used:]...)
	}
}

// consume handles the upgrade response and every whole frame in b and
// returns how many bytes it used.
func (p *poller) consume(c *conn, b []byte) int {
	used := 0
	if c.st == stUpgrading {
		n, deflate, err := parseUpgradeResponse(b, c.accept, p.e.cfg.Compression)
		if n > 0 && p.e.cfg.Compression && !deflate {
			// A run measuring compression must not quietly measure
			// connections without it.
			err = &handshakeError{msg: "permessage-deflate offered (--compression) and not accepted"}
		}
		if err != nil {
			p.upgradeFailed(c, err)
			return 0
		}
		if n == 0 {
			return 0
		}
		if deflate {
			c.flags |= fDeflate
		}
		used = n
		p.opened(c)
		if c.st == stClosed {
			return used
		}
	}
	var f serverFrame
	for c.st != stClosed {
		n, err := parseServerFrame(b[used:], &f)
		if err != nil {
			p.fail(c, errProtocol)
			return used
		}
		if n == 0 {
			break
		}
		used += n
		p.frame(c, &f)
	}
	return used
}

// upgradeFailed fails c on an upgrade response that is not a good 101. A
// refusal is counted by its HTTP status, apart from malformed responses:
// 401 (token) and 429 (a limit) say what the gateway decided, not that
// something broke.
func (p *poller) upgradeFailed(c *conn, err error) {
	var he *handshakeError
	if errors.As(err, &he) && he.status != 0 {
		p.refused[uint16(he.status)]++
		p.fail(c, errRefused)
		return
	}
	p.fail(c, errHandshake)
}

// opened runs once the upgrade succeeded.
func (p *poller) opened(c *conn) {
	c.st = stOpen
	c.accept = nil
	p.dialing--
	p.ctr.open.Add(1)
	now := p.e.now()
	p.hsLat.Record((now - c.t0) / 1000)
	c.t0 = now
	switch {
	case c.has(fSub):
		p.wbuf = p.subscribeCmd(p.wbuf[:0], c)
		p.write(c, p.wbuf)
	default:
		p.ready(c)
	}
	p.dialQueued()
}

// ready marks c as fully set up (subscribed, or an open publisher).
func (p *poller) ready(c *conn) {
	c.flags |= fReady
	c.attempt = 0
	now := p.e.now()
	p.lastReady = now
	p.ctr.ready.Add(1)
	if c.has(fSub) {
		p.subLat.Record((now - c.t0) / 1000)
	}
	if c.since != 0 {
		p.reconnLat.Record((now - c.since) / 1000)
		c.since = 0
	}
	if c.pub != nil {
		c.pub.c = c
	}
	if c.has(fQuery) {
		p.pres.q.c = c
	}
	if c.paces() {
		p.e.liveSubs[c.ch].Add(1)
	}
	if c.has(fChurn) {
		p.startClose(c, 1000)
	}
}

// frame handles one server frame.
func (p *poller) frame(c *conn, f *serverFrame) {
	// RSV1 only on the first frame of a message, and only once negotiated
	// (RFC 7692 §6.1).
	if f.rsv1 && (f.op != opText && f.op != opBinary || !c.has(fDeflate)) {
		p.fail(c, errProtocol)
		return
	}
	switch f.op {
	case opText, opBinary:
		if c.frag != nil {
			p.fail(c, errProtocol)
			return
		}
		if f.fin {
			p.complete(c, f.payload, f.rsv1)
			return
		}
		c.frag = append(make([]byte, 0, max(len(f.payload)*2, 512)), f.payload...)
		if f.rsv1 {
			c.flags |= fZFrag
		}
	case opCont:
		if c.frag == nil {
			p.fail(c, errProtocol)
			return
		}
		if len(c.frag)+len(f.payload) > maxServerMessage {
			p.fail(c, errProtocol)
			return
		}
		c.frag = append(c.frag, f.payload...)
		if f.fin {
			msg, compressed := c.frag, c.has(fZFrag)
			c.frag = nil
			c.flags &^= fZFrag
			p.complete(c, msg, compressed)
		}
	case opPing:
		p.wbuf = appendClientFrame(p.wbuf[:0], opPong, f.payload, p.rng.Uint32())
		p.write(c, p.wbuf)
	case opPong:
	case opClose:
		code := uint16(1005)
		if len(f.payload) >= 2 {
			code = binary.BigEndian.Uint16(f.payload)
		}
		p.closeCodes[code]++
		if !c.has(fClosing) {
			p.serverClosed(c, code)
			var pl [2]byte
			binary.BigEndian.PutUint16(pl[:], code)
			if code == 1005 {
				p.wbuf = appendClientFrame(p.wbuf[:0], opClose, nil, p.rng.Uint32())
			} else {
				p.wbuf = appendClientFrame(p.wbuf[:0], opClose, pl[:], p.rng.Uint32())
			}
			p.write(c, p.wbuf)
		}
		p.release(c, false)
	}
}

// serverClosed accounts for a close we did not start.
func (p *poller) serverClosed(c *conn, code uint16) {
	if c.dropped == 0 {
		c.dropped = p.e.now()
	}
	switch {
	case c.has(fSlow):
		p.slowDrops = append(p.slowDrops, slowDrop{seen: c.dropped, lastT: c.lastT, code: code})
	case c.has(fReconnect) && p.e.cfg.StormTrigger == "server":
		// expected: the storm is the gateway going away
	case c.st == stOpen && c.has(fReady):
		p.ctr.errs[errClosed].Add(1)
	}
}

// complete handles a whole message as it came, inflating it first when
// compressed.
func (p *poller) complete(c *conn, b []byte, compressed bool) {
	if compressed {
		var err error
		if b, err = p.z.inflate(b); err != nil {
			p.fail(c, errProtocol)
			return
		}
	}
	p.message(c, b)
}

// message handles one complete text or binary message.
func (p *poller) message(c *conn, b []byte) {
	var r reply
	if err := parseReply(b, &r); err != nil {
		p.ctr.errs[errProtocol].Add(1)
		return
	}
	switch r.op {
	case replyMessage:
		p.publication(c, &r)
	case replyOK:
		switch {
		case c.has(fSub) && !c.has(fReady) && r.id == 1:
			if c.rs != nil && p.rec != nil {
				p.recoverOK(c, &r)
			} else if c.rs != nil {
				p.presenceBack(c.rs)
			}
			p.ready(c)
		case c.pub != nil && r.id > 0:
			c.pub.ack(p, r.id, true)
		case c.has(fQuery):
			p.answered(&r)
		}
	case replyError:
		p.ctr.errs[errReply].Add(1)
		if c.has(fSub) && !c.has(fReady) && r.id == 1 {
			p.fail(c, -1)
		} else if c.pub != nil && r.id > 0 {
			c.pub.ack(p, r.id, false)
		} else if c.has(fQuery) {
			p.queryFailed(&r)
		}
	case replyJoin, replyLeave:
		p.presencePush(c, &r)
	case replyPong:
	default:
		p.ctr.errs[errProtocol].Add(1)
	}
}

// publication accounts for one received publication.
func (p *poller) publication(c *conn, r *reply) {
	if c.rs != nil {
		p.recoverMessage(c, r)
		return
	}
	ch := p.e.channelOf(r.channel)
	seq, ts, ok := parsePayload(r.data)
	before := c.trk.max
	if ch < 0 || ch != c.ch || !ok || !c.trk.add(seq) {
		p.ctr.errs[errForeign].Add(1)
		return
	}
	if d := c.trk.max - before; d > 0 && !c.has(fSlow) {
		if p.dMax[ch] == 0 {
			p.dirty = append(p.dirty, ch)
		}
		p.dMax[ch] += d
	}
	p.ctr.received.Add(1)
	p.lastRecv = p.wall
	c.lastT = ts
	if !c.has(fSlow) { // a slow reader's latency is its own doing
		us := (p.wall - ts) / 1000
		p.lat.Record(us)
		p.latIv.Record(us)
	}
}

// startClose sends a close frame; the connection ends when the gateway
// answers, closes, or the close deadline passes.
func (p *poller) startClose(c *conn, code uint16) {
	var pl [2]byte
	binary.BigEndian.PutUint16(pl[:], code)
	c.flags |= fClosing
	c.t0 = p.e.now()
	p.wbuf = appendClientFrame(p.wbuf[:0], opClose, pl[:], p.rng.Uint32())
	p.write(c, p.wbuf)
}

// lost handles EOF or a socket error.
func (p *poller) lost(c *conn) {
	switch {
	case c.st == stClosed:
		return
	case c.has(fClosing):
		p.release(c, false)
	case c.st == stConnecting:
		p.fail(c, errConnect)
	case c.st == stUpgrading:
		p.fail(c, errHandshake)
	default:
		p.serverClosed(c, 1006)
		p.closeCodes[1006]++
		p.release(c, false)
	}
}

// fail closes c because of an error of the given kind (-1: already counted).
func (p *poller) fail(c *conn, kind int) {
	if kind >= 0 {
		p.ctr.errs[kind].Add(1)
	}
	p.release(c, true)
}

// dialFailed handles a dial that never got a socket.
func (p *poller) dialFailed(c *conn, kind int) {
	p.ctr.errs[kind].Add(1)
	c.st = stClosed
	p.afterClose(c)
}

// release closes c's socket and settles its accounting. abort resets the
// connection (no TIME_WAIT), used for failures and teardown.
func (p *poller) release(c *conn, abort bool) {
	if c.st == stClosed {
		return
	}
	if abort {
		_ = unix.SetsockoptLinger(int(c.fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
	unix.Close(int(c.fd))
	p.conns[c.fd] = nil
	if c.st < stOpen {
		p.dialing--
	} else {
		p.ctr.open.Add(-1)
	}
	c.st = stClosed
	p.putBuf(c.in)
	p.putBuf(c.out)
	c.in, c.out, c.frag, c.accept = nil, nil, nil, nil
	if c.has(fReady) && c.paces() {
		p.flushMax()
		p.e.liveSubs[c.ch].Add(-1)
		p.e.maxSum[c.ch].Add(-c.trk.max)
	}
	p.fold(c)
	if c.has(fChurn) && c.has(fReady) {
		p.ctr.closed.Add(1)
	}
	if c.pub != nil && c.pub.c == c {
		c.pub.c = nil
	}
	p.afterClose(c)
	p.dialQueued()
}

// afterClose counts a setup failure and schedules a storm reconnect.
func (p *poller) afterClose(c *conn) {
	if c.rs != nil && c.rs.c == c {
		c.rs.c = nil // away until its next connection
	}
	if !c.has(fReady) && !c.has(fFailed) {
		c.flags |= fFailed
		p.ctr.failed.Add(1)
	}
	if !c.has(fReconnect) || p.e.stopping.Load() {
		return
	}
	since := c.since
	if since == 0 && c.rs == nil { // recover times its reconnects from the subscribe instead
		since = p.e.now()
	}
	r := dialReq{idx: c.idx, ch: c.ch, flags: c.flags & (fSub | fReconnect | fWatch | fQuery), target: p.e.subTarget(c.target + 1), since: since, rs: c.rs, user: c.user}
	if c.has(fReady) {
		p.lostReady.Add(1)
		p.ctr.ready.Add(-1) // it must become ready again
		if c.rs == nil || !p.comeBack(c, r) {
			p.dialq = append(p.dialq, r)
		}
		return
	}
	p.ctr.failed.Add(-1) // retried, not given up
	r.attempt = c.attempt + 1
	backoff := int64(50*time.Millisecond) << min(r.attempt-1, 4)
	backoff += p.rng.Int64N(backoff)
	heap.Push(&p.timers, timer{at: p.e.now() + backoff, req: r})
}

// fold adds a ready subscriber's tracker to the poller's aggregate, once.
func (p *poller) fold(c *conn) {
	if !c.has(fSub) || !c.has(fReady) || c.has(fFolded) || c.has(fReconnect) {
		return
	}
	c.flags |= fFolded
	agg := &p.agg[c.ch]
	if c.has(fSlow) {
		agg = &p.slowAgg[c.ch]
	}
	agg.add(chanAgg{Subs: 1, Unique: c.trk.unique, Dups: c.trk.dups, Reordered: c.trk.reordered})
}

// teardown resets every connection and stops the loop.
func (p *poller) teardown() {
	for _, c := range p.conns {
		if c != nil {
			p.release(c, true)
		}
	}
	p.timers = nil
	p.dialq = nil
	p.quit = true
}

// lastDelivery is the unix ns arrival time of the newest publication.
func (p *poller) lastDelivery() int64 { return p.lastRecv }

func (p *poller) getBuf() []byte {
	if n := len(p.spare); n > 0 {
		b := p.spare[n-1]
		p.spare = p.spare[:n-1]
		return b
	}
	return make([]byte, 0, spareBufSize)
}

func (p *poller) putBuf(b []byte) {
	if cap(b) == spareBufSize && len(p.spare) < 1024 {
		p.spare = append(p.spare, b[:0])
	}
}

// appendSubscribe appends a masked subscribe command with id 1, and with
// since unless it is negative, and epoch unless it is empty (a channel
// without a stream yet has none).
func appendSubscribe(dst, channel []byte, since int64, epoch string, key uint32) []byte {
	var num [20]byte
	var sinceNum []byte
	n := len(`{"op":"subscribe","channel":"","id":1}`) + len(channel)
	if since >= 0 {
		sinceNum = strconv.AppendInt(num[:0], since, 10)
		n += len(`,"since":`) + len(sinceNum)
		if epoch != "" {
			n += len(`,"epoch":""`) + len(epoch)
		}
	}
	dst, start := beginClientFrame(dst, opText, n, key)
	dst = append(dst, `{"op":"subscribe","channel":"`...)
	dst = append(dst, channel...)
	dst = append(dst, `","id":1`...)
	if since >= 0 {
		dst = append(dst, `,"since":`...)
		dst = append(dst, sinceNum...)
		if epoch != "" {
			dst = append(dst, `,"epoch":"`...)
			dst = append(dst, epoch...)
			dst = append(dst, '"')
		}
	}
	dst = append(dst, '}')
	maskBytes(dst[start:], key)
	return dst
}

// timer is a delayed dial (storm reconnect backoff).
type timer struct {
	at  int64
	req dialReq
}

type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}
