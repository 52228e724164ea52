package main

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// encoder is what every setting's storage can do: give its YAML for
// `wshub config print`, or nil and a comment to print instead (secrets,
// settings whose default is derived at start).
type encoder interface {
	encode() (n *yaml.Node, comment string)
}

// value is the storage of a setting that is one YAML value and may have a
// flag: it reads a flag or WSHUB_ variable (flag.Value's Set) and a YAML node
// (decode). decode's errors name the expected type only; the file loader
// adds the file, line and key. typeName is the placeholder -h shows.
//
// Like the flag package's own values, each is its variable's address under
// another type, so that a zero value (which flag.PrintDefaults makes) works.
type value interface {
	encoder
	String() string
	Set(string) error
	decode(n *yaml.Node) error
	typeName() string
}

// block is the storage of a setting that is a YAML structure of its own
// (namespaces): it walks its node with the file's decoder, which checks the
// keys and records where each came from.
type block interface {
	encoder
	decodeBlock(d *fileDecoder, key string, n *yaml.Node)
}

func scalarNode(tag, v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: v}
}

// deref follows an alias (*name) to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// describe says what a node is, for "want X, got Y" errors.
func describe(n *yaml.Node) string {
	switch n = deref(n); n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a sequence"
	}
	if n.ShortTag() == "!!null" {
		return "nothing (null)"
	}
	return strconv.Quote(n.Value)
}

// lineError puts a decode error on a line of its own: an element of a
// sequence may be on another line than its key.
type lineError struct {
	line int
	err  error
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }

// scalar returns a scalar node's text if its YAML type is one of tags.
func scalar(n *yaml.Node, want string, tags ...string) (string, error) {
	if n = deref(n); n.Kind == yaml.ScalarNode {
		for _, t := range tags {
			if n.ShortTag() == t {
				return n.Value, nil
			}
		}
	}
	return "", fmt.Errorf("want %s, got %s", want, describe(n))
}

// A string setting takes a number as written (instance_id: 7), not a
// boolean or null, which would be a different value than the one typed.
var stringTags = []string{"!!str", "!!int", "!!float"}

type stringValue string

func stringVar(p *string, def string) *stringValue { *p = def; return (*stringValue)(p) }

func (v *stringValue) String() string     { return string(*v) }
func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }
func (v *stringValue) typeName() string   { return "string" }
func (v *stringValue) decode(n *yaml.Node) error {
	s, err := scalar(n, "a string", stringTags...)
	*v = stringValue(s)
	return err
}
func (v *stringValue) encode() (*yaml.Node, string) { return scalarNode("!!str", string(*v)), "" }

// urlValue is a URL that may carry a password (--redis): one with a password
// prints as a comment with the password redacted.
type urlValue string

func urlVar(p *string) *urlValue { *p = ""; return (*urlValue)(p) }

func (v *urlValue) String() string            { return string(*v) }
func (v *urlValue) Set(s string) error        { *v = urlValue(s); return nil }
func (v *urlValue) typeName() string          { return "url" }
func (v *urlValue) decode(n *yaml.Node) error { return (*stringValue)(v).decode(n) }
func (v *urlValue) encode() (*yaml.Node, string) {
	s := string(*v)
	u, err := url.Parse(s)
	if err != nil && strings.Contains(s, "@") {
		return nil, "<set, not printed: it may hold a password>"
	}
	if err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return nil, "<" + u.Redacted() + ", password not printed>"
		}
	}
	return (*stringValue)(v).encode()
}

type intValue int

func intVar(p *int, def int) *intValue { *p = def; return (*intValue)(p) }

func (v *intValue) String() string   { return strconv.Itoa(int(*v)) }
func (v *intValue) typeName() string { return "int" }
func (v *intValue) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, strconv.IntSize)
	if err != nil {
		return fmt.Errorf("want an integer, got %q", s)
	}
	*v = intValue(n)
	return nil
}
func (v *intValue) decode(n *yaml.Node) error {
	if _, err := scalar(n, "an integer", "!!int"); err != nil {
		return err
	}
	if deref(n).Decode((*int)(v)) != nil {
		return fmt.Errorf("want an integer, got %s (out of range)", describe(n))
	}
	return nil
}
func (v *intValue) encode() (*yaml.Node, string) { return scalarNode("!!int", v.String()), "" }

type floatValue float64

func floatVar(p *float64, def float64) *floatValue { *p = def; return (*floatValue)(p) }

func (v *floatValue) String() string   { return strconv.FormatFloat(float64(*v), 'g', -1, 64) }
func (v *floatValue) typeName() string { return "float" }
func (v *floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("want a finite number, got %q", s)
	}
	*v = floatValue(f)
	return nil
}
func (v *floatValue) decode(n *yaml.Node) error {
	s, err := scalar(n, "a number", "!!int", "!!float")
	if err == nil {
		err = v.Set(s)
	}
	return err
}
func (v *floatValue) encode() (*yaml.Node, string) { return numberNode(v.String()), "" }

// numberNode is a plain number: one written like an integer is one in YAML
// (the float and byte-size decoders take both), not a tagged !!float.
func numberNode(s string) *yaml.Node {
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return scalarNode("!!int", s)
	}
	return scalarNode("!!float", s)
}

type boolValue bool

func boolVar(p *bool, def bool) *boolValue { *p = def; return (*boolValue)(p) }

func (v *boolValue) IsBoolFlag() bool { return true } // --echo without =true
func (v *boolValue) String() string   { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) typeName() string { return "" }
func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false, got %q", s)
	}
	*v = boolValue(b)
	return nil
}
func (v *boolValue) decode(n *yaml.Node) error {
	if _, err := scalar(n, "true or false", "!!bool"); err != nil {
		return err
	}
	return deref(n).Decode((*bool)(v))
}
func (v *boolValue) encode() (*yaml.Node, string) { return scalarNode("!!bool", v.String()), "" }

// derivedBool is a boolean whose default is worked out at start from other
// settings (--registry: on with Redis). Printing the worked-out value would
// pin it, so an unset one prints as a comment saying what unset means.
type derivedBool struct {
	p, set  *bool
	derived string
}

func (v *derivedBool) IsBoolFlag() bool { return true }
func (v *derivedBool) typeName() string { return "" }
func (v *derivedBool) String() string {
	if v.p == nil {
		return "false"
	}
	return strconv.FormatBool(*v.p)
}
func (v *derivedBool) Set(s string) error {
	*v.set = true
	return (*boolValue)(v.p).Set(s)
}
func (v *derivedBool) decode(n *yaml.Node) error {
	*v.set = true
	return (*boolValue)(v.p).decode(n)
}
func (v *derivedBool) encode() (*yaml.Node, string) {
	if !*v.set {
		return nil, "<not set: " + v.derived + ">"
	}
	return (*boolValue)(v.p).encode()
}

type durationValue time.Duration

func durationVar(p *time.Duration, def time.Duration) *durationValue {
	*p = def
	return (*durationValue)(p)
}

func (v *durationValue) String() string   { return time.Duration(*v).String() }
func (v *durationValue) typeName() string { return "duration" }
func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration like 25s or 1m30s, got %q", s)
	}
	*v = durationValue(d)
	return nil
}
func (v *durationValue) decode(n *yaml.Node) error {
	s, err := scalar(n, "a duration like 25s", stringTags...)
	if err == nil {
		err = v.Set(s)
	}
	return err
}
func (v *durationValue) encode() (*yaml.Node, string) { return scalarNode("!!str", v.String()), "" }

func (b *byteSize) typeName() string { return "size" }
func (b *byteSize) decode(n *yaml.Node) error {
	s, err := scalar(n, "a number of bytes like 2GiB", "!!int", "!!str")
	if err == nil {
		err = b.Set(s)
	}
	return err
}
func (b *byteSize) encode() (*yaml.Node, string) {
	if n := numberNode(b.String()); n.Tag == "!!int" {
		return n, ""
	}
	return scalarNode("!!str", b.String()), ""
}

// listValue is a list of strings: a YAML sequence in the file, comma-separated
// on the command line and in the environment. A repeatable flag adds each
// occurrence to the list; a flag or variable replaces what the file said.
type listValue struct {
	p       *[]string
	repeat  bool
	started bool // Set was called: later calls add to the list
}

func listVar(p *[]string, repeat bool) *listValue { *p = nil; return &listValue{p: p, repeat: repeat} }

func (v *listValue) typeName() string { return "list" }
func (v *listValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}
func (v *listValue) Set(s string) error {
	if !v.started || !v.repeat {
		*v.p = nil
	}
	v.started = true
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			*v.p = append(*v.p, e)
		}
	}
	return nil
}
func (v *listValue) decode(n *yaml.Node) error {
	if n = deref(n); n.Kind != yaml.SequenceNode {
		return fmt.Errorf("want a sequence of strings, got %s", describe(n))
	}
	var out []string
	for _, e := range n.Content {
		s, err := scalar(e, "a string", stringTags...)
		if err != nil {
			return &lineError{e.Line, fmt.Errorf("element %d: %v", len(out)+1, err)}
		}
		out = append(out, s)
	}
	*v.p = out
	return nil
}
func (v *listValue) encode() (*yaml.Node, string) {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, e := range *v.p {
		n.Content = append(n.Content, scalarNode("!!str", e))
	}
	return n, ""
}

// secretList is a list of secrets (JWT secrets, admin API keys): one that is
// set prints as a comment, so that a printed file never sets a wrong secret.
type secretList struct{ listValue }

func secretListVar(p *[]string) *secretList { return &secretList{*listVar(p, true)} }

func (v *secretList) encode() (*yaml.Node, string) {
	switch n := len(*v.p); n {
	case 0:
		return v.listValue.encode()
	case 1:
		return nil, "<1 value set, not printed>"
	default:
		return nil, fmt.Sprintf("<%d values set, not printed>", n)
	}
}
