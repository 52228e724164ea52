package hub

import (
	"strings"
	"sync"

	"github.com/wshub/wshub/hub/access"
)

// maxGrants bounds the grants table: distinct channels claims are few in
// practice (one per role or plan); past the bound a claim gets its own copy,
// which costs memory but never correctness.
const maxGrants = 4096

// grantsTable shares one access.Grants between every connection whose token
// has the same channels claim: 19,000 connections with ["room:*"] hold one
// list, not 19,000.
type grantsTable struct {
	mu sync.Mutex
	m  map[string]*access.Grants // by the patterns joined with "\\n"; guarded by mu
}

// get returns the shared grants for patterns (nil for a token without a
// channels claim, has false).
func (g *grantsTable) get(patterns []string, has bool) *access.Grants {
	if !has {
		return nil
	}
	key := strings.Join(patterns, "\n") // patterns never hold '\n'
	g.mu.Lock()
	defer g.mu.Unlock()
	if gr := g.m[key]; gr != nil {
		return gr
	}
	gr := &access.Grants{Patterns: patterns}
	if len(g.m) < maxGrants {
		if g.m == nil {
			g.m = make(map[string]*access.Grants)
		}
		g.m[key] = gr
	}
	return gr
}
