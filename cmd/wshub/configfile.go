package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// loadFile sets every setting the YAML file at path gives. Every problem is
// reported, each with the file, line and key: an unknown key, a key given
// twice, a value of the wrong type.
func (c *config) loadFile(path string, tab []setting) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err == io.EOF {
		return nil // empty: every setting keeps its default
	} else if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); err != io.EOF {
		return fmt.Errorf("%s:%d: a second YAML document; the configuration is one", path, more.Line)
	}
	d := &fileDecoder{path: path, c: c, settings: map[string]encoder{}, sections: map[string]bool{}}
	for _, s := range tab {
		d.settings[s.key] = s.v
		for i := range s.key {
			if s.key[i] == '.' {
				d.sections[s.key[:i]] = true
			}
		}
	}
	if len(doc.Content) > 0 {
		if root := deref(doc.Content[0]); root.Kind != yaml.ScalarNode || root.ShortTag() != "!!null" {
			d.section("", root)
		}
	}
	return errors.Join(d.errs...)
}

// fileDecoder walks one file's YAML tree against the settings table.
type fileDecoder struct {
	path     string
	c        *config
	settings map[string]encoder // by key
	sections map[string]bool    // "admin", "redis", ...
	errs     []error
}

func (d *fileDecoder) errorf(line int, format string, a ...any) {
	d.errs = append(d.errs, fmt.Errorf("%s:%d: %s", d.path, line, fmt.Sprintf(format, a...)))
}

// record notes that key's value came from the file, for validation errors.
func (d *fileDecoder) record(key string, n *yaml.Node) {
	d.c.src[key] = fmt.Sprintf("%s:%d: %s", d.path, n.Line, key)
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

// mapping calls each for every key of the mapping n, the value of key, once
// it checked that n is a mapping and that no key is there twice.
//
// A null is an empty mapping: a section whose keys are all commented out.
func (d *fileDecoder) mapping(key string, n *yaml.Node, each func(k, v *yaml.Node)) {
	if n = deref(n); n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		if key == "" {
			d.errorf(n.Line, "want a mapping of settings (key: value), got %s", describe(n))
		} else {
			d.errorf(n.Line, "%s: want a mapping, got %s", key, describe(n))
		}
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k.Line, "a key must be a name, got %s", describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k.Line, "%s: given twice (first on line %d)", join(key, k.Value), first)
			continue
		}
		seen[k.Value] = k.Line
		each(k, v)
	}
}

// section decodes the mapping of the section at prefix ("" for the top).
func (d *fileDecoder) section(prefix string, n *yaml.Node) {
	d.mapping(prefix, n, func(k, v *yaml.Node) {
		key := join(prefix, k.Value)
		switch s := d.settings[key].(type) {
		case block:
			s.decodeBlock(d, key, v)
			d.record(key, k)
		case value:
			d.leaf(key, k, v, s)
		default:
			if d.sections[key] {
				d.section(key, v)
				return
			}
			var known []string
			for other := range d.settings {
				known = append(known, other)
			}
			for other := range d.sections {
				known = append(known, other)
			}
			d.unknown(k, key, known)
		}
	})
}

// leaf decodes one value, k being its key's node.
func (d *fileDecoder) leaf(key string, k, n *yaml.Node, v value) {
	if err := v.decode(n); err != nil {
		line := deref(n).Line
		var le *lineError
		if errors.As(err, &le) {
			line, err = le.line, le.err
		}
		d.errorf(line, "%s: %v", key, err)
		return
	}
	d.record(key, k)
}

// fields decodes the mapping n into the struct at ptr, whose fields are
// named by their yaml tags; a key that is no field's is an error.
func (d *fileDecoder) fields(key string, n *yaml.Node, ptr any) {
	st := reflect.ValueOf(ptr).Elem()
	d.mapping(key, n, func(k, v *yaml.Node) {
		fkey := join(key, k.Value)
		var known []string
		for i := range st.NumField() {
			name := yamlName(st.Type().Field(i))
			if name == k.Value {
				d.leaf(fkey, k, v, valueFor(st.Field(i).Addr().Interface()))
				return
			}
			known = append(known, join(key, name))
		}
		d.unknown(k, fkey, known)
	})
}

// unknown reports key as unknown, with the known key it is most likely a
// typo of, if any is within two edits.
func (d *fileDecoder) unknown(k *yaml.Node, key string, known []string) {
	best, bestDist := "", 3
	for _, other := range known {
		if dist := editDistance(key, other); dist < bestDist || dist == bestDist && other < best {
			best, bestDist = other, dist
		}
	}
	if best != "" {
		d.errorf(k.Line, "unknown key %q (did you mean %q?)", key, best)
		return
	}
	d.errorf(k.Line, "unknown key %q", key)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// yamlName is a struct field's key: its yaml tag's name.
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// valueFor gives a struct field the storage a setting of its type has.
func valueFor(p any) value {
	switch p := p.(type) {
	case *string:
		return (*stringValue)(p)
	case *int:
		return (*intValue)(p)
	case *float64:
		return (*floatValue)(p)
	case *bool:
		return (*boolValue)(p)
	case *time.Duration:
		return (*durationValue)(p)
	case *[]string:
		return &listValue{p: p}
	}
	panic(fmt.Sprintf("no setting type for %T", p))
}
