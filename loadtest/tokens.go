package loadtest

import (
	"fmt"
	"math"
	"net/url"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/wshub/wshub/hub/auth"
)

// Token stock limits. Minting an HS256 token (auth.Mint, BenchmarkMint)
// takes 4-5 µs and leaves 3 KB of garbage; done on the poller goroutine,
// the generator's bottleneck, it added 10-15 % to wsload's CPU per churn
// cycle (some 80 µs). So tokens are minted before the first connection
// instead, on every core, as many as the run is known to need.
const (
	// maxStock caps the tokens one process mints ahead (about 200 bytes
	// each, so some 50 MiB and a second or two of minting); a run that
	// needs more mints the rest as it connects (TokenStats.DuringRun).
	maxStock = 1 << 18
	// churnCeiling is the connections/s one poller is assumed to reach in
	// churn at --rate 0, where nothing else says how many tokens the run
	// will use: about twice what one poller has been measured to sustain.
	churnCeiling = 20000
)

// TokenStats say where a run's minted tokens (Config.JWTSecret) came from.
type TokenStats struct {
	Preminted int64 `json:"preminted"`  // minted before the first connection
	DuringRun int64 `json:"during_run"` // minted while connecting, the stock having run out
}

func (s *TokenStats) add(o TokenStats) {
	s.Preminted += o.Preminted
	s.DuringRun += o.DuringRun
}

// tokenSource gives every upgrade the token it presents, ready to append
// where it goes: the fixed Config.Token, or a token minted for that
// connection alone. Its methods are safe for every poller at once.
type tokenSource struct {
	fixed []byte // Config.Token, query-escaped unless it goes in the header

	secret   []byte
	channels []string
	cfg      *Config

	stock []byte   // pre-minted tokens back to back
	ends  []uint32 // token k is stock[ends[k-1]:ends[k]]
	next  atomic.Int64
	late  atomic.Int64
}

// newTokenSource returns nil when the upgrades present no token.
func newTokenSource(cfg *Config) *tokenSource {
	switch {
	case cfg.Token != "":
		tok := cfg.Token
		if !cfg.TokenHeader {
			// The gateway unescapes a query token that holds % or +; JWTs
			// hold neither, so only a foreign token can change here.
			tok = url.QueryEscape(tok)
		}
		return &tokenSource{fixed: []byte(tok)}
	case cfg.JWTSecret != "":
		return &tokenSource{secret: []byte(cfg.JWTSecret), channels: cfg.JWTChannels, cfg: cfg}
	}
	return nil
}

// sub is the sub of the k-th token this process mints. Numbering the
// tokens across worker processes as connections are (worker w has k*n+w)
// keeps every sub of the run unique, one user per connection, so that a
// per-user connection cap on the gateway never sees two.
func (s *tokenSource) sub(k int64) string {
	return "wsload-" + strconv.FormatInt(k*int64(s.cfg.Workers)+int64(s.cfg.Worker), 10)
}

func (s *tokenSource) mint(k int64) (string, error) {
	// Minted JWTs are base64url and dots: fit for the query and the header.
	return auth.Mint(s.secret, "HS256", s.sub(k), s.channels, s.cfg.JWTTTL, nil)
}

// premint mints the first n tokens, on every core.
func (s *tokenSource) premint(n int64) error {
	if s == nil || s.secret == nil || n <= 0 {
		return nil
	}
	toks := make([]string, n)
	workers := int64(min(runtime.GOMAXPROCS(0), int(n)))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for k := w; k < n && errs[w] == nil; k += workers {
				toks[k], errs[w] = s.mint(k)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("minting tokens: %v", err)
		}
	}
	size := 0
	for _, t := range toks {
		size += len(t)
	}
	s.stock = make([]byte, 0, size)
	s.ends = make([]uint32, n)
	for k, t := range toks {
		s.stock = append(s.stock, t...)
		s.ends[k] = uint32(len(s.stock))
	}
	// Minting left some 3 KB of garbage per token: collect it and return
	// it to the system now, or the collector and scavenger would do it
	// during the phase the run measures.
	toks = nil
	debug.FreeOSMemory()
	return nil
}

// take returns the token of the next upgrade (nil: none).
func (s *tokenSource) take() []byte {
	if s == nil {
		return nil
	}
	if s.fixed != nil {
		return s.fixed
	}
	return s.at(s.next.Add(1) - 1)
}

// forConn is the token of a connection whose user is 1 + k (the k-th
// token, sub wsload-k when alone: presence-churn reconnects a member as
// its user), or with user 0 the next one.
func (s *tokenSource) forConn(user int32) []byte {
	if user == 0 || s == nil || s.fixed != nil {
		return s.take()
	}
	return s.at(int64(user) - 1)
}

// at is the k-th token, minted ahead or now.
func (s *tokenSource) at(k int64) []byte {
	if k < int64(len(s.ends)) {
		start := uint32(0)
		if k > 0 {
			start = s.ends[k-1]
		}
		return s.stock[start:s.ends[k]]
	}
	s.late.Add(1)
	tok, err := s.mint(k)
	if err != nil {
		// Config.Validate minted one with the same secret, claims and a
		// longer sub, so this does not happen; no token gets a 401,
		// which is counted.
		return nil
	}
	return []byte(tok)
}

func (s *tokenSource) stats() TokenStats {
	if s == nil {
		return TokenStats{}
	}
	return TokenStats{Preminted: int64(len(s.ends)), DuringRun: s.late.Load()}
}

// tokensFor is how many tokens this process will present, one per upgrade:
// the setup's planned connections and what the main phase adds (storm:
// each reconnects once; churn: what its rate allows, or churnCeiling per
// poller at max rate), at most maxStock.
func (c *Config) tokensFor(planned int64) int64 {
	n := planned
	switch c.Scenario {
	case ScenarioStorm:
		n += planned
	case ScenarioRecover:
		// every drop is a reconnect
		n += int64(math.Min(c.Duration.Seconds()*c.DisconnectRate/float64(c.Workers), maxStock)) + 1
	case ScenarioPresence:
		return int64(c.presenceUsers()) // by user, not by connection: a member reconnects with its own
	case ScenarioChurn:
		rate := c.Rate / float64(c.Workers)
		if rate <= 0 {
			rate = float64(churnCeiling * c.Pollers)
		}
		// churn dials at most floor(elapsed × rate) + 1 by any time
		// within the duration.
		n += int64(math.Min(c.Duration.Seconds()*rate, maxStock)) + 1
	}
	return min(n, maxStock)
}
