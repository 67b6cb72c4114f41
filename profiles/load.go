package profiles

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxProfileSize bounds what the loader reads; real profiles are a few KiB.
const maxProfileSize = 1 << 20

// LoadFile reads and parses the profile at path. Errors name the path as given.
func LoadFile(path string) (*Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load profile: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxProfileSize+1))
	if err != nil {
		return nil, fmt.Errorf("load profile %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse checks a profile's syntax and everything that does not depend on
// variable values, reporting every problem as an ErrorList. filename names the
// profile in errors and sets ${PROFILE_DIR} to its directory.
func Parse(filename string, data []byte) (*Profile, error) {
	dir := filepath.Dir(filename)
	if abs, err := filepath.Abs(filename); err == nil {
		dir = filepath.Dir(abs)
	}
	return parse(filename, filename, dir, false, data)
}

func parse(source, file, dir string, builtin bool, data []byte) (*Profile, error) {
	l := &loader{errs: errs{file: file}}
	root := l.document(data)
	if root == nil {
		return nil, l.list.err()
	}
	p := &Profile{source: source, file: file, dir: dir, builtin: builtin}
	l.profile(root, p)
	if err := l.list.err(); err != nil {
		return nil, err
	}
	return p, nil
}

// loader walks yaml.Node trees by hand, rather than decoding into structs, so
// that every problem has a position and none stops the walk.
type loader struct {
	errs
}

func nodePos(n *yaml.Node) pos { return pos{Line: n.Line, Col: n.Column} }

// document decodes exactly one YAML document and returns its root mapping.
func (l *loader) document(data []byte) *yaml.Node {
	if len(data) > maxProfileSize {
		l.at(pos{}, "profile is larger than %d bytes", maxProfileSize)
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			l.at(pos{}, "empty profile")
		} else {
			l.syntaxError(err)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		l.at(nodePos(&extra), "a profile file holds one YAML document; found a second one")
	case !errors.Is(err, io.EOF):
		l.syntaxError(err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		l.at(nodePos(&doc), "empty profile")
		return nil
	}
	root := doc.Content[0]
	l.rejectAliases(root)
	if root.Kind != yaml.MappingNode {
		l.at(nodePos(root), "a profile must be a mapping, got %s", describe(root))
		return nil
	}
	return root
}

var yamlLineRE = lazyRegexp(`^yaml: line ([0-9]+): (.*)$`)

// syntaxError converts the parser's "yaml: line N: msg" into an Error. The
// parser does not expose a column, so Col is 1.
func (l *loader) syntaxError(err error) {
	msg := err.Error()
	if m := yamlLineRE().FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		l.at(pos{Line: line, Col: 1}, "YAML syntax: %s", m[2])
		return
	}
	l.at(pos{}, "YAML syntax: %s", strings.TrimPrefix(msg, "yaml: "))
}

// rejectAliases reports every alias: a profile is reviewed as written, and an
// alias would make one line silently stand for another.
func (l *loader) rejectAliases(n *yaml.Node) {
	if n.Kind == yaml.AliasNode {
		l.at(nodePos(n), "aliases (*%s) are not supported in profiles: write the value out", n.Value)
		return
	}
	for _, c := range n.Content {
		l.rejectAliases(c)
	}
}

// describe names a node's type for error messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.ShortTag() {
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a decimal number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "null"
	}
	return fmt.Sprintf("a %s value", n.ShortTag())
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// keyValue is one entry of a mapping.
type keyValue struct {
	key        string
	keyNode, v *yaml.Node
}

// pairs returns a mapping's entries, reporting duplicate and non-string keys.
// A null value (an empty "key:") stands for an empty mapping.
func (l *loader) pairs(n *yaml.Node, where string) []keyValue {
	if isNull(n) || n.Kind == yaml.AliasNode {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		l.at(nodePos(n), "%s must be a mapping, got %s", where, describe(n))
		return nil
	}
	seen := make(map[string]int, len(n.Content)/2)
	var out []keyValue
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			l.at(nodePos(k), "keys in %s must be strings, got %s", where, describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			l.at(nodePos(k), "duplicate key %q in %s (first at line %d)", k.Value, where, first)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, keyValue{key: k.Value, keyNode: k, v: v})
	}
	return out
}

// fields walks a mapping whose keys are fixed by the language, handing each
// known key's value to its handler and reporting unknown keys with a
// suggestion.
func (l *loader) fields(n *yaml.Node, where string, handlers map[string]func(v *yaml.Node)) {
	for _, kv := range l.pairs(n, where) {
		h, ok := handlers[kv.key]
		if !ok {
			known := make([]string, 0, len(handlers))
			for k := range handlers {
				known = append(known, k)
			}
			l.at(nodePos(kv.keyNode), "unknown key %q in %s%s", kv.key, where, suggest(kv.key, known))
			continue
		}
		h(kv.v)
	}
}

// seq returns a list's items; null stands for an empty list.
func (l *loader) seq(n *yaml.Node, where string) []*yaml.Node {
	if isNull(n) || n.Kind == yaml.AliasNode {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		l.at(nodePos(n), "%s must be a list, got %s", where, describe(n))
		return nil
	}
	return n.Content
}

// str returns a string scalar. Null yields ok=false without an error (the key
// counts as absent); any other type is an error, with a hint to quote it.
func (l *loader) str(n *yaml.Node, where string) (string, bool) {
	return l.scalar(n, where, "a string", "!!str")
}

// scalar returns the text of a scalar whose tag is one of tags.
func (l *loader) scalar(n *yaml.Node, where, want string, tags ...string) (string, bool) {
	if isNull(n) || n.Kind == yaml.AliasNode {
		return "", false
	}
	if n.Kind == yaml.ScalarNode {
		tag := n.ShortTag()
		for _, t := range tags {
			if tag == t {
				return n.Value, true
			}
		}
		if len(tags) == 1 && tags[0] == "!!str" {
			l.at(nodePos(n), "%s must be %s, got %s (quote it: %q)", where, want, describe(n), n.Value)
			return "", false
		}
	}
	l.at(nodePos(n), "%s must be %s, got %s", where, want, describe(n))
	return "", false
}

// path reads a path that may start with a variable.
func (l *loader) path(n *yaml.Node, where string) (pathValue, bool) {
	raw, ok := l.str(n, where)
	if !ok {
		if isNull(n) {
			l.at(nodePos(n), "%s: empty path", where)
		}
		return pathValue{}, false
	}
	t, err := parseTemplate(raw)
	if err == nil {
		err = checkPathTemplate(raw, t)
	}
	if err != nil {
		l.at(nodePos(n), "%s: %v", where, err)
		return pathValue{}, false
	}
	return pathValue{raw: raw, tmpl: t, at: nodePos(n)}, true
}

func (l *loader) paths(n *yaml.Node, where string) []pathValue {
	var out []pathValue
	for _, item := range l.seq(n, where) {
		if pv, ok := l.path(item, where); ok {
			out = append(out, pv)
		}
	}
	return out
}
