package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/wshub/wshub/hub/access"
	yaml "go.yaml.in/yaml/v3"
)

// namespaceOptions is what a namespace allows. An empty mode was not given:
// see defaultNamespace and namespace for what applies instead. Options to
// come (slow-consumer policy) are more fields: the file loader and
// `config print` go by the yaml tags.
type namespaceOptions struct {
	Subscribe string `yaml:"subscribe"`
	Publish   string `yaml:"publish"`
	// History, not taken from the default namespace: a listed namespace
	// keeps history only when it says so.
	HistorySize int           `yaml:"history_size"`
	HistoryTTL  time.Duration `yaml:"history_ttl"`
	RecoveryMax int           `yaml:"recovery_max"`
	// Presence, not taken from the default namespace either (presence.go).
	Presence        bool          `yaml:"presence"`
	JoinLeave       bool          `yaml:"join_leave"`
	JoinLeaveLinger time.Duration `yaml:"join_leave_linger"`
	PresenceFor     string        `yaml:"presence_for"`
}

// Bounds of the history options: a client cannot grow a stream beyond what
// the operator configured, and the operator not beyond these.
const (
	maxHistorySize = 1 << 20
	maxRecovery    = 100_000
)

// authEnabled reports whether client tokens are verified at all.
func (c *config) authEnabled() bool {
	return len(c.JWTSecrets) > 0 || len(c.JWTPublicKeys) > 0 || c.JWTJWKS != ""
}

// defaultNamespace is what channels without ':' allow (and, with
// allow_unknown_namespaces, those of an unlisted namespace): default_namespace
// as the file gave it, each mode it leaves out being anyone without auth and
// authenticated with auth, so that configuring auth closes the gateway to
// anonymous clients unless the file says otherwise.
func (c *config) defaultNamespace() namespaceOptions {
	fallback := access.Anyone.String()
	if c.authEnabled() {
		fallback = access.Authenticated.String()
	}
	o := namespaceOptions{Subscribe: fallback, Publish: fallback}
	if d := c.DefaultNamespace; d != nil {
		o = d.or(o)
	}
	return o
}

// namespace is what the channels of namespace name allow: its options, the
// modes it leaves out being the default namespace's; ok is false when the
// namespace is not listed and allow_unknown_namespaces is off.
func (c *config) namespace(name string) (o namespaceOptions, ok bool) {
	o, listed := c.Namespaces[name]
	switch {
	case listed:
		return o.or(c.defaultNamespace()), true
	case c.AllowUnknownNamespaces:
		return c.defaultNamespace(), true // history included
	}
	return namespaceOptions{}, false
}

// or fills the modes o leaves out from d.
func (o namespaceOptions) or(d namespaceOptions) namespaceOptions {
	if o.Subscribe == "" {
		o.Subscribe = d.Subscribe
	}
	if o.Publish == "" {
		o.Publish = d.Publish
	}
	return o
}

// validateNamespaces checks namespace names and modes; a mode that needs a
// token without JWT keys configured would shut every client out silently.
func (c *config) validateNamespaces() []error {
	var errs []error
	checkModes := func(key string, o namespaceOptions) {
		for _, m := range []struct {
			key, mode string
			modes     []string
		}{{"subscribe", o.Subscribe, access.SubscribeModes}, {"publish", o.Publish, access.PublishModes}} {
			name := c.name(key + "." + m.key)
			switch {
			case m.mode == "":
			case !slices.Contains(m.modes, m.mode):
				errs = append(errs, fmt.Errorf("%s: %q is not one of %s", name, m.mode, strings.Join(m.modes, ", ")))
			case (m.mode == access.Authenticated.String() || m.mode == access.Token.String()) && !c.authEnabled():
				errs = append(errs, fmt.Errorf("%s: %s needs client authentication: set %s", name, m.mode, authKeys))
			}
		}
	}
	if c.DefaultNamespace != nil {
		checkModes("default_namespace", *c.DefaultNamespace)
	}
	names := make([]string, 0, len(c.Namespaces))
	for name := range c.Namespaces {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		key := "namespaces." + name
		if err := access.ValidNamespaceName(name); err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", c.name(key), err))
		}
		checkModes(key, c.Namespaces[name])
		errs = append(errs, c.checkHistory(key, c.Namespaces[name])...)
		errs = append(errs, c.checkPresence(key, c.Namespaces[name])...)
	}
	if c.DefaultNamespace != nil {
		errs = append(errs, c.checkHistory("default_namespace", *c.DefaultNamespace)...)
		errs = append(errs, c.checkPresence("default_namespace", *c.DefaultNamespace)...)
	}
	return errs
}

// checkHistory checks a namespace's history options.
func (c *config) checkHistory(key string, o namespaceOptions) []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{c.name(key + "." + field)}, args...)...))
	}
	switch {
	case o.HistorySize < 0 || o.HistorySize > maxHistorySize:
		bad("history_size", "must be from 0 to %d, got %d", maxHistorySize, o.HistorySize)
	case o.HistorySize > 0 && o.HistoryTTL <= 0:
		bad("history_ttl", "must be set (a duration above 0) with history_size: a stream must not outlive its use")
	case o.HistorySize == 0 && o.HistoryTTL != 0:
		bad("history_ttl", "needs history_size")
	}
	if o.RecoveryMax < 0 || o.RecoveryMax > maxRecovery {
		bad("recovery_max", "must be from 0 (the default, %d) to %d, got %d", access.DefaultRecoveryMax, maxRecovery, o.RecoveryMax)
	}
	return errs
}

// namespacesValue is the namespaces: block, NAME: options.
type namespacesValue struct{ p *map[string]namespaceOptions }

func namespacesVar(p *map[string]namespaceOptions) *namespacesValue {
	*p = nil
	return &namespacesValue{p}
}

func (v *namespacesValue) decodeBlock(d *fileDecoder, key string, n *yaml.Node) {
	d.mapping(key, n, func(k, vn *yaml.Node) {
		name := key + "." + k.Value
		var o namespaceOptions
		d.fields(name, vn, &o)
		if *v.p == nil {
			*v.p = map[string]namespaceOptions{}
		}
		(*v.p)[k.Value] = o
		d.record(name, k)
	})
}

func (v *namespacesValue) encode() (*yaml.Node, string) {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	names := make([]string, 0, len(*v.p))
	for name := range *v.p {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		o := (*v.p)[name]
		n.Content = append(n.Content, scalarNode("!!str", name), encodeFields(&o))
	}
	return n, ""
}

// defaultNamespaceValue is default_namespace:, nil when not given.
type defaultNamespaceValue struct{ p **namespaceOptions }

func defaultNamespaceVar(p **namespaceOptions) *defaultNamespaceValue {
	*p = nil
	return &defaultNamespaceValue{p}
}

func (v *defaultNamespaceValue) decodeBlock(d *fileDecoder, key string, n *yaml.Node) {
	o := &namespaceOptions{}
	d.fields(key, n, o)
	*v.p = o
}

func (v *defaultNamespaceValue) encode() (*yaml.Node, string) {
	if *v.p == nil {
		return nil, "<not given: anyone may subscribe and publish without auth, authenticated clients with auth>"
	}
	return encodeFields(*v.p), ""
}
