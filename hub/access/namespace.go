package access

import (
	"errors"
	"fmt"
	"strings"

	"github.com/wshub/wshub/hub/history"
)

// Namespace holds the rules of the channels in one namespace: the part of
// a channel's name before its first ':' (`room:42` is in `room`); names
// without ':' are in the default namespace. Later features (history,
// presence, slow-consumer policy) add their options here, so that one
// lookup per subscribe finds all of a channel's rules.
type Namespace struct {
	Name      string // "" for the default namespace
	Subscribe Mode   // who may subscribe
	Publish   Mode   // who may publish from a client
	// History makes the namespace's channels keep a stream that clients can
	// recover from (the zero Options: none).
	History history.Options
	// RecoveryMax is the most publications one recovery replays; a client
	// that missed more gets "recovered":false (0 means DefaultRecoveryMax).
	RecoveryMax int
	// Presence tracks the channels' members (the zero value: not tracked).
	Presence Presence
}

// DefaultRecoveryMax is RecoveryMax when the namespace leaves it at 0.
const DefaultRecoveryMax = 1000

// Recovery returns how many publications a recovery may replay.
func (ns *Namespace) Recovery() int {
	if ns.RecoveryMax > 0 {
		return ns.RecoveryMax
	}
	return DefaultRecoveryMax
}

// MaxNamespaceName bounds a namespace's name.
const MaxNamespaceName = 64

// ValidNamespaceName reports why name cannot name a namespace, or nil.
func ValidNamespaceName(name string) error {
	switch {
	case name == "":
		return errors.New("a namespace name must not be empty (the default namespace is configured as default_namespace)")
	case len(name) > MaxNamespaceName:
		return fmt.Errorf("namespace name %q is longer than %d bytes", name, MaxNamespaceName)
	case strings.ContainsAny(name, ":#,"):
		return fmt.Errorf("namespace name %q must not contain ':', '#' or ','", name)
	}
	return nil
}

// Policy is the gateway's access rules. It is immutable once built and safe
// for concurrent use.
type Policy struct {
	def          Namespace
	named        map[string]*Namespace
	allowUnknown bool // channels of unlisted namespaces follow def; otherwise refused
}

// Open is the policy of a gateway without authentication: anyone may
// subscribe to and publish on any channel.
func Open() *Policy {
	return &Policy{def: Namespace{Subscribe: Anyone, Publish: Anyone}, allowUnknown: true}
}

// NewPolicy builds a policy from the default namespace's rules, the named
// namespaces and whether channels of other namespaces are allowed (with the
// default namespace's rules) or refused.
func NewPolicy(def Namespace, named []Namespace, allowUnknown bool) (*Policy, error) {
	if def.Subscribe == Subscribers {
		return nil, errors.New("default namespace: subscribe cannot be subscribers")
	}
	if err := def.Presence.check(); err != nil {
		return nil, fmt.Errorf("default namespace: %v", err)
	}
	def.Name = ""
	p := &Policy{def: def, named: make(map[string]*Namespace, len(named)), allowUnknown: allowUnknown}
	for i := range named {
		ns := named[i]
		if err := ValidNamespaceName(ns.Name); err != nil {
			return nil, err
		}
		if ns.Subscribe == Subscribers {
			return nil, fmt.Errorf("namespace %q: subscribe cannot be subscribers", ns.Name)
		}
		if err := ns.Presence.check(); err != nil {
			return nil, fmt.Errorf("namespace %q: %v", ns.Name, err)
		}
		if _, dup := p.named[ns.Name]; dup {
			return nil, fmt.Errorf("namespace %q is configured twice", ns.Name)
		}
		p.named[ns.Name] = &ns
	}
	return p, nil
}

// HasPresence reports whether some namespace tracks presence: only then
// does a connection keep its token's info claim.
func (p *Policy) HasPresence() bool {
	if p.def.Presence.On {
		return true
	}
	for _, ns := range p.named {
		if ns.Presence.On {
			return true
		}
	}
	return false
}

// Lookup returns the rules of channel's namespace, or nil when its
// namespace is not configured and unknown namespaces are refused. It does
// not allocate.
func (p *Policy) Lookup(channel string) *Namespace {
	name, _, found := strings.Cut(channel, ":")
	if !found {
		return &p.def
	}
	if ns := p.named[name]; ns != nil {
		return ns
	}
	if p.allowUnknown {
		return &p.def
	}
	return nil
}

// Default returns the default namespace's rules.
func (p *Policy) Default() Namespace { return p.def }

// Namespaces returns the named namespaces (for logs and config print).
func (p *Policy) Namespaces() []Namespace {
	out := make([]Namespace, 0, len(p.named))
	for _, ns := range p.named {
		out = append(out, *ns)
	}
	return out
}
