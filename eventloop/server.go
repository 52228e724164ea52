package eventloop

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/wshub/wshub/wsproto"
)

// ErrUnexpectedStop is returned by Run when gnet's engine stopped without
// Shutdown having been called (for example accept failed): every client was
// dropped, so the process should exit non-zero.
var ErrUnexpectedStop = errors.New("eventloop: engine stopped unexpectedly")

// Handler receives connection events. Every call is made on the goroutine of
// the loop that owns the connection.
type Handler interface {
	OnOpen(c *Conn)             // after the upgrade, on /ws only
	OnText(c *Conn, msg []byte) // one complete text message on /ws; msg is valid only during the call
	OnClose(c *Conn)            // exactly once per OnOpen
}

// Server is a WebSocket server on gnet event loops.
type Server struct {
	cfg      Config
	handler  Handler
	upgrader Upgrader // handler's, when it implements it
	loops    []*Loop
	hsCfg    wsproto.HandshakeConfig
	maxConns int64
	conns    atomic.Int64
	metrics  *metrics

	partial    atomic.Int64 // bytes of partial input held by all connections (partial.go)
	maxPartial int64
	maxRequest int // handshake size cap
	memory     memoryGuard
	// ips is the per-source table (iplimit.go), nil when neither per-IP
	// limit is set; ipClock its time in nanoseconds (a test may replace it
	// before Run).
	ips     *ipLimiter
	ipClock func() int64

	epoch                                     time.Time
	tickDur                                   time.Duration
	pingTicks, pongTicks, hsTicks, closeTicks int64
	msgTicks                                  int64

	bindMu sync.Mutex

	mu       sync.Mutex // engine, booted, addr
	engine   gnet.Engine
	booted   bool
	addr     net.Addr
	stopping atomic.Bool // Shutdown was called
	running  atomic.Bool // Run was called

	ready        chan struct{} // closed once listening, or once Run returned
	readyOnce    sync.Once
	runDone      chan struct{}
	shutdownOnce sync.Once
	shutdownDone chan struct{}
}

// New prepares a server; Run starts it. It raises the process's soft
// RLIMIT_NOFILE to the hard limit, from which the default MaxConns derives.
func New(cfg Config, h Handler) (*Server, error) {
	if h == nil {
		return nil, errors.New("eventloop: nil Handler")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := cfg.applyBudget(raiseFDLimit()); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:          cfg,
		handler:      h,
		maxConns:     int64(cfg.MaxConns),
		maxPartial:   int64(cfg.MaxPartialBytes),
		maxRequest:   wsproto.DefaultMaxRequestBytes,
		epoch:        time.Now(),
		tickDur:      cfg.tickInterval(),
		ready:        make(chan struct{}),
		runDone:      make(chan struct{}),
		shutdownDone: make(chan struct{}),
	}
	s.upgrader, _ = h.(Upgrader)
	s.pongTicks = s.ticks(cfg.PongTimeout)
	s.hsTicks = s.ticks(cfg.HandshakeTimeout)
	s.closeTicks = s.ticks(cfg.CloseTimeout)
	s.msgTicks = s.ticks(cfg.MessageTimeout)
	s.memory.init(cfg.MemoryLimit)
	if cfg.MaxConnsPerIP > 0 || cfg.HandshakesPerIPPerS > 0 {
		s.ips = newIPLimiter(cfg.MaxConnsPerIP, cfg.HandshakesPerIPPerS, ipTableCapacity(cfg.MaxConns))
		s.ipClock = func() int64 { return int64(time.Since(s.epoch)) }
	}
	if cfg.PingInterval > 0 {
		s.pingTicks = s.ticks(cfg.PingInterval)
	}
	paths := []string{"/ws"}
	if cfg.Echo {
		paths = append(paths, "/echo")
	}
	s.hsCfg = wsproto.HandshakeConfig{Paths: paths, CheckOrigin: originChecker(cfg.Origins), MaxRequestBytes: s.maxRequest,
		Compression: cfg.Compression}
	s.loops = make([]*Loop, cfg.Loops)
	for i := range s.loops {
		s.loops[i] = newLoop(s, i)
	}
	s.metrics = newMetrics(s)
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(s.metrics); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// originChecker accepts the listed origins (case-insensitively). A request
// without Origin is accepted: browsers always send it, and the allow-list
// exists to stop other sites' pages, not non-browser clients.
func originChecker(origins []string) func(string) bool {
	if len(origins) == 0 {
		return nil
	}
	allowed := make(map[string]struct{}, len(origins))
	for _, o := range origins {
		allowed[strings.ToLower(o)] = struct{}{}
	}
	return func(origin string) bool {
		if origin == "" {
			return true
		}
		_, ok := allowed[strings.ToLower(origin)]
		return ok
	}
}

// ticks converts d to wheel ticks, rounding up.
func (s *Server) ticks(d time.Duration) int64 {
	return int64((d + s.tickDur - 1) / s.tickDur)
}

func (s *Server) nowTick() int64 { return int64(time.Since(s.epoch) / s.tickDur) }

// firstPing spreads first pings over the second half of the interval, so
// that connections opened together (a reconnect storm) are not all pinged
// in the same tick forever after.
func (s *Server) firstPing(id uint64) int64 {
	spread := s.pingTicks/2 + 1
	return s.pingTicks - int64((id*0x9E3779B97F4A7C15)>>33)%spread
}

// Loops returns the loops, fixed at New; index i is the loop whose
// connections report Loop() == i.
func (s *Server) Loops() []*Loop { return append([]*Loop(nil), s.loops...) }

// Conns is the number of connections, upgraded or not.
func (s *Server) Conns() int { return int(s.conns.Load()) }

// Addr is the bound address once listening, nil before.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Ready is closed once the server listens (Addr is set) or Run has returned.
func (s *Server) Ready() <-chan struct{} { return s.ready }

func (s *Server) markReady() { s.readyOnce.Do(func() { close(s.ready) }) }

// Run serves until Shutdown; it returns nil then, ErrUnexpectedStop when the
// engine stopped by itself, or the error that kept it from starting.
func (s *Server) Run() error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("eventloop: Run called twice")
	}
	defer close(s.runDone)
	defer s.markReady()
	addr, hold, err := resolveListenAddr(s.cfg.Addr)
	if err != nil {
		return err
	}
	if hold >= 0 {
		defer unix.Close(hold)
	}
	network, _ := splitAddr(addr)
	err = gnet.Run((*events)(s), addr,
		gnet.WithMulticore(true),
		gnet.WithReusePort(reusePortNetwork(network)), // see listen.go
		gnet.WithNumEventLoop(s.cfg.Loops),
		gnet.WithReadBufferCap(s.cfg.ReadBuffer),
		gnet.WithWriteBufferCap(s.cfg.WriteBuffer),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithReuseAddr(true),
		gnet.WithTicker(true),
		gnet.WithLogger(gnetLogger{s.cfg.Logger}),
	)
	if err != nil {
		return err
	}
	if !s.stopping.Load() {
		return ErrUnexpectedStop
	}
	return nil
}

// Shutdown drains the server: new connections are refused, every open
// connection gets what is already queued and then close 1001, unfinished
// upgrades are dropped; it waits for the connections to go (their close
// answers or CloseTimeout) or for ctx, then stops the engine and waits for
// Run to return. Later calls wait for the first one.
func (s *Server) Shutdown(ctx context.Context) error {
	first := false
	s.shutdownOnce.Do(func() { first = true })
	if !first {
		select {
		case <-s.shutdownDone:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer close(s.shutdownDone)

	s.mu.Lock()
	s.stopping.Store(true) // OnBoot and OnOpen check it under or after this lock
	booted, eng := s.booted, s.engine
	s.mu.Unlock()
	if !booted {
		// Not listening yet: OnBoot will see stopping and stop the engine.
		if !s.running.Load() {
			return nil
		}
		return s.waitRun(ctx)
	}
	for _, l := range s.loops {
		if l.bound() {
			l.Post(l.drainFn)
		}
	}
	err := s.waitConns(ctx)
	// Engine.Stop signals, then polls every 500ms; Run returning is the
	// signal we wait for instead, so its own wait is cut short.
	signal, cancel := context.WithCancel(context.Background())
	cancel()
	_ = eng.Stop(signal)
	if werr := s.waitRun(ctx); err == nil {
		err = werr
	}
	return err
}

func (s *Server) waitConns(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for s.conns.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

func (s *Server) waitRun(ctx context.Context) error {
	select {
	case <-s.runDone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// loopFor returns our Loop bound to gnet's loop el, binding a free one the
// first time el is seen. Called on el's goroutine.
func (s *Server) loopFor(el gnet.EventLoop) *Loop {
	for _, l := range s.loops {
		if r := l.ref.Load(); r != nil && r.el == el {
			return l
		}
	}
	s.bindMu.Lock()
	defer s.bindMu.Unlock()
	for _, l := range s.loops {
		if !l.bound() {
			l.bind(el)
			return l
		}
	}
	return nil // more gnet loops than ours: cannot happen with WithNumEventLoop
}

// events is the Server as gnet's EventHandler, kept off Server's API.
type events Server

func (e *events) OnBoot(eng gnet.Engine) gnet.Action {
	s := (*Server)(e)
	addr := listenAddr(eng)
	s.mu.Lock()
	s.engine, s.booted, s.addr = eng, true, addr
	stop := s.stopping.Load()
	s.mu.Unlock()
	s.markReady()
	if stop {
		return gnet.Shutdown
	}
	return gnet.None
}

// listenAddr reads the bound address (port 0 resolved) from a duplicate of
// the listener's descriptor.
func listenAddr(eng gnet.Engine) net.Addr {
	fd, err := eng.Dup()
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: a.Name, Net: "unix"}
	}
	return nil
}

func (e *events) OnShutdown(gnet.Engine) {}

func (e *events) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	s := (*Server)(e)
	l := s.loopFor(gc.EventLoop())
	if l == nil {
		s.cfg.Logger.Error("eventloop: gnet loop without a Loop; connection refused")
		return nil, gnet.Close
	}
	// Refusing at MaxConns, on the goroutine that accepted, keeps accept
	// away from EMFILE, which would stop the whole engine (limits.go).
	if s.stopping.Load() {
		l.stats.refused[refusedStopping].Add(1)
		return nil, gnet.Close
	}
	if s.conns.Add(1) > s.maxConns {
		s.conns.Add(-1)
		l.stats.refused[refusedMaxConns].Add(1)
		return nil, gnet.Close
	}
	c := &Conn{gc: gc, loop: l, id: nextID.Add(1)}
	gc.SetContext(c)
	l.add(c)
	l.wheel.schedule(&c.tm, s.nowTick()+s.hsTicks)
	return nil, gnet.None
}

func (e *events) OnTraffic(gc gnet.Conn) gnet.Action {
	c, _ := gc.Context().(*Conn)
	if c == nil {
		return gnet.Close
	}
	l := c.loop
	if c.state < stDead {
		l.enter()
		l.inTraffic = c
		c.onTraffic()
		l.leave()
		l.inTraffic = nil
	}
	if c.state >= stDead {
		return gnet.Close
	}
	return gnet.None
}

func (e *events) OnClose(gc gnet.Conn, _ error) gnet.Action {
	c, _ := gc.Context().(*Conn)
	if c == nil {
		return gnet.None // refused at OnOpen
	}
	s := (*Server)(e)
	l := c.loop
	c.state = stClosed
	delete(l.deferred, c)
	l.wheel.cancel(&c.tm)
	c.discardQueue()
	c.dec.Reset()
	c.releasePartial()
	c.releaseIP(gc)
	l.remove(c)
	s.conns.Add(-1)
	if c.flags&fOpened != 0 {
		c.flags &^= fOpened
		l.closed = append(l.closed, c)
	}
	if l.depth == 0 { // a close from gnet itself (EOF, our async Close)
		l.enter()
		l.leave()
	}
	return gnet.None
}

// OnTick runs on gnet's ticker goroutine: it posts a tick to every bound
// loop that has not yet run the previous one.
func (e *events) OnTick() (time.Duration, gnet.Action) {
	now := time.Now()
	e.memory.sample(now)
	e.memory.freeAfterDrop(now, e.conns.Load())
	e.memory.freeAfterBurst(now, nextID.Load())
	if e.ips != nil {
		e.ips.sweep(e.ipClock())
	}
	for _, l := range e.loops {
		if l.bound() && l.tickQueued.CompareAndSwap(false, true) {
			l.Post(l.tickFn)
		}
	}
	return e.tickDur, gnet.None
}
