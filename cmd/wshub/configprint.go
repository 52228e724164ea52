package main

import (
	"fmt"
	"io"
	"reflect"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// printConfig writes the settings of tab as a YAML file that --config reads
// back to the same configuration: every setting, in the table's order, each
// section together. A setting that prints as a comment (a secret, a default
// worked out at start) is a comment line above the next key.
func printConfig(w io.Writer, tab []setting) error {
	root := &yaml.Node{Kind: yaml.MappingNode}
	sections := map[string]*yaml.Node{"": root}
	keys := map[string]*yaml.Node{} // each section's key in root
	cur, curKey := root, (*yaml.Node)(nil)
	var pending []string // comment lines waiting for the next key
	// flush puts the pending comments above the last key of the section
	// they belong to, once no key of it follows.
	flush := func() {
		at := curKey
		if len(cur.Content) > 0 {
			at = cur.Content[len(cur.Content)-2]
		}
		if at != nil && len(pending) > 0 {
			at.HeadComment = strings.Join(append(pending, at.HeadComment), "\n")
			at.HeadComment = strings.TrimSuffix(at.HeadComment, "\n")
		}
		pending = nil
	}
	for _, s := range tab {
		prefix, name := "", s.key
		if i := strings.LastIndexByte(s.key, '.'); i >= 0 {
			prefix, name = s.key[:i], s.key[i+1:]
		}
		m := sections[prefix]
		if m == nil {
			m = &yaml.Node{Kind: yaml.MappingNode}
			sections[prefix] = m
			keys[prefix] = scalarNode("!!str", prefix)
			root.Content = append(root.Content, keys[prefix], m)
		}
		if m != cur {
			flush()
			cur, curKey = m, keys[prefix]
		}
		n, comment := s.v.encode()
		if n == nil {
			pending = append(pending, fmt.Sprintf("%s: %s", name, comment))
			continue
		}
		k := scalarNode("!!str", name)
		k.HeadComment = strings.Join(pending, "\n")
		pending = nil
		m.Content = append(m.Content, k, n)
	}
	flush()
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root},
		HeadComment: "wshub configuration (wshub config print): wshub --config FILE reads it back."}
	if err := enc.Encode(doc); err != nil {
		return err
	}
	return enc.Close()
}

// encodeFields is a mapping of the fields of the struct at ptr that are not
// their zero value (not given), keyed by their yaml tags.
func encodeFields(ptr any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	st := reflect.ValueOf(ptr).Elem()
	for i := range st.NumField() {
		if st.Field(i).IsZero() {
			continue
		}
		v, _ := valueFor(st.Field(i).Addr().Interface()).encode()
		n.Content = append(n.Content, scalarNode("!!str", yamlName(st.Type().Field(i))), v)
	}
	return n
}
