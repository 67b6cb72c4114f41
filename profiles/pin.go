package profiles

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// SetPin returns the profile document data with server.executable and
// server.sha256 set, keeping every other key and the comments yaml.v3
// preserves. The document is re-indented with two spaces. The input must be a
// valid profile (Parse it first for positioned errors) and so is the output.
func SetPin(data []byte, executable, sha256 string) ([]byte, error) {
	if !filepath.IsAbs(executable) || filepath.Clean(executable) != executable {
		return nil, fmt.Errorf("pin: executable %q must be an absolute, clean path", executable)
	}
	if err := checkSHA256(sha256); err != nil {
		return nil, fmt.Errorf("pin: %w", err)
	}
	if _, err := Parse("profile", data); err != nil {
		return nil, fmt.Errorf("pin: the profile is invalid:\n%w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("pin: %w", err) // Parse accepted it: cannot happen
	}
	root := doc.Content[0]
	server := mappingValue(root, "server")
	if server == nil {
		server = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		insertAfter(root, "server", server, "description", "name")
	} else if isNull(server) {
		*server = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", LineComment: server.LineComment}
	}
	// "$" starts a variable in paths; a literal one is written "$$".
	setString(server, "executable", strings.ReplaceAll(executable, "$", "$$"))
	setString(server, "sha256", sha256)

	spellOutFlowNulls(&doc, false)

	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("pin: encode profile: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("pin: encode profile: %w", err)
	}
	out := buf.Bytes()
	if _, err := Parse("pinned profile", out); err != nil {
		return nil, errors.Join(errors.New("pin: the rewritten profile does not parse"), err)
	}
	return out, nil
}

// mappingValue returns the value of key in mapping m, or nil.
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// insertAfter adds key: value to m after the first of the keys present, or at
// the end when none is.
func insertAfter(m *yaml.Node, key string, value *yaml.Node, after ...string) {
	kv := []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, value}
	for _, a := range after {
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == a {
				m.Content = slices.Insert(m.Content, i+2, kv...)
				return
			}
		}
	}
	m.Content = append(m.Content, kv...)
}

// setString sets key to a string value in mapping m, keeping the value's
// comments when the key exists. The explicit !!str tag makes the encoder
// quote values that would otherwise read as numbers (an all-digit hash).
func setString(m *yaml.Node, key, value string) {
	if v := mappingValue(m, key); v != nil {
		*v = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value,
			HeadComment: v.HeadComment, LineComment: v.LineComment, FootComment: v.FootComment}
		return
	}
	m.Content = append(m.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key},
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value})
}

// spellOutFlowNulls writes empty nulls inside flow collections as "null":
// yaml.v3 would re-encode "{egress}" with an empty quoted string as the value,
// turning an empty value into a string.
func spellOutFlowNulls(n *yaml.Node, inFlow bool) {
	if inFlow && n.Kind == yaml.ScalarNode && n.Value == "" && n.ShortTag() == "!!null" {
		n.Value = "null"
	}
	inFlow = inFlow || n.Style&yaml.FlowStyle != 0
	for _, c := range n.Content {
		spellOutFlowNulls(c, inFlow)
	}
}
