package profiles

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// profile walks the root mapping into p, checking each section.
func (l *loader) profile(root *yaml.Node, p *Profile) {
	var apiVersion, kind, name *yaml.Node
	l.fields(root, "the profile", map[string]func(*yaml.Node){
		"apiVersion":   func(v *yaml.Node) { apiVersion = v },
		"kind":         func(v *yaml.Node) { kind = v },
		"name":         func(v *yaml.Node) { name = v },
		"description":  func(v *yaml.Node) { p.description, _ = l.str(v, "description") },
		"server":       func(v *yaml.Node) { l.server(v, &p.server) },
		"filesystem":   func(v *yaml.Node) { l.filesystem(v, &p.fs) },
		"network":      func(v *yaml.Node) { l.network(v, &p.net) },
		"limits":       func(v *yaml.Node) { l.limits(v, &p.limits) },
		"env":          func(v *yaml.Node) { l.env(v, &p.env) },
		"on_violation": func(v *yaml.Node) { p.onViolation = l.onViolation(v) },
		"require":      func(v *yaml.Node) { p.require = l.require(v) },
	})
	if p.onViolation == (OnViolation{}) {
		p.onViolation = DefaultOnViolation()
	}
	l.required(root, apiVersion, "apiVersion", func(s string) error {
		if s != apiVersionV1 {
			return fmt.Errorf("unsupported apiVersion %q (this mcpjail reads %s)", s, apiVersionV1)
		}
		return nil
	})
	l.required(root, kind, "kind", func(s string) error {
		if s != kindProfile {
			return fmt.Errorf("kind must be %q, got %q", kindProfile, s)
		}
		return nil
	})
	p.name = l.required(root, name, "name", checkProfileName)
}

// required reads a mandatory string key. A missing key is reported at the
// enclosing mapping; a null or wrongly typed one at its value.
func (l *loader) required(parent, v *yaml.Node, key string, check func(string) error) string {
	if v == nil {
		l.at(nodePos(parent), "missing required key %q", key)
		return ""
	}
	s, ok := l.str(v, key)
	if !ok {
		if isNull(v) {
			l.at(nodePos(v), "%s must not be empty", key)
		}
		return ""
	}
	if err := check(s); err != nil {
		l.at(nodePos(v), "%v", err)
		return ""
	}
	return s
}

func (l *loader) server(n *yaml.Node, s *rawServer) {
	l.fields(n, "server", map[string]func(*yaml.Node){
		"executable": func(v *yaml.Node) {
			if pv, ok := l.path(v, "server.executable"); ok {
				s.executable = &pv
			}
		},
		"sha256": func(v *yaml.Node) { s.sha256 = l.checked(v, "server.sha256", checkSHA256) },
		"user":   func(v *yaml.Node) { s.user = l.checked(v, "server.user", checkUser) },
	})
}

// checked reads an optional string and reports check's error at its position.
func (l *loader) checked(v *yaml.Node, where string, check func(string) error) string {
	s, ok := l.str(v, where)
	if !ok {
		return ""
	}
	if err := check(s); err != nil {
		l.at(nodePos(v), "%v", err)
		return ""
	}
	return s
}

func (l *loader) filesystem(n *yaml.Node, fs *rawFilesystem) {
	l.fields(n, "filesystem", map[string]func(*yaml.Node){
		"read":  func(v *yaml.Node) { fs.read = l.paths(v, "filesystem.read") },
		"write": func(v *yaml.Node) { fs.write = l.paths(v, "filesystem.write") },
		"exec":  func(v *yaml.Node) { fs.exec = l.paths(v, "filesystem.exec") },
		"deny":  func(v *yaml.Node) { fs.deny = l.paths(v, "filesystem.deny") },
	})
}

func (l *loader) network(n *yaml.Node, net *rawNetwork) {
	l.fields(n, "network", map[string]func(*yaml.Node){
		"egress": func(v *yaml.Node) {
			for _, item := range l.seq(v, "network.egress") {
				if r, ok := l.egressRule(item); ok {
					net.egress = append(net.egress, r)
				}
			}
		},
		"unix":          func(v *yaml.Node) { net.unix = l.paths(v, "network.unix") },
		"bind":          func(v *yaml.Node) { net.bind = l.ports(v, "network.bind") },
		"egress_budget": func(v *yaml.Node) { net.budget = l.budget(v) },
	})
}

func (l *loader) egressRule(n *yaml.Node) (EgressRule, bool) {
	r := EgressRule{Protocol: ProtoTCP}
	var cidr, host *yaml.Node
	before := len(l.list)
	l.fields(n, "network.egress rule", map[string]func(*yaml.Node){
		"cidr":     func(v *yaml.Node) { cidr = v },
		"host":     func(v *yaml.Node) { host = v },
		"ports":    func(v *yaml.Node) { r.Ports = l.ports(v, "network.egress ports") },
		"protocol": func(v *yaml.Node) { r.Protocol = l.protocol(v) },
	})
	switch {
	case host != nil:
		name, _ := l.str(host, "network.egress host")
		l.at(nodePos(host), "hostname rules (host: %q) are not supported yet: DNS support arrives in a later release; use cidr with the service's published address ranges", name)
	case cidr == nil:
		// An empty item ("- " alone) is a rule with nothing in it, not a
		// rule for no address: it must not compile to a zero prefix.
		if n.Kind == yaml.MappingNode || isNull(n) {
			l.at(nodePos(n), "network.egress rule needs a cidr")
		}
	default:
		if s, ok := l.str(cidr, "network.egress cidr"); ok {
			p, err := parsePrefix(s)
			if err != nil {
				l.at(nodePos(cidr), "%v", err)
			}
			r.Prefix = p
		} else if isNull(cidr) {
			l.at(nodePos(cidr), "network.egress cidr must not be empty")
		}
	}
	return r, len(l.list) == before
}

func (l *loader) protocol(v *yaml.Node) Protocol {
	s, ok := l.str(v, "network.egress protocol")
	if !ok {
		return ProtoTCP
	}
	p, err := parseProtocol(s)
	if err != nil {
		l.at(nodePos(v), "%v", err)
		return ProtoTCP
	}
	return p
}

// ports reads a list of ports and "lo-hi" ranges, written as numbers or strings.
func (l *loader) ports(n *yaml.Node, where string) []PortRange {
	out := []PortRange{}
	for _, item := range l.seq(n, where) {
		s, ok := l.scalar(item, where+" entry", "a port number or a \"lo-hi\" range", "!!int", "!!str")
		if !ok {
			continue
		}
		pr, err := parsePortRange(s)
		if err != nil {
			l.at(nodePos(item), "%v", err)
			continue
		}
		out = append(out, pr)
	}
	return out
}

func (l *loader) budget(n *yaml.Node) *Budget {
	if isNull(n) {
		return nil
	}
	var b Budget
	var bytesNode, perNode *yaml.Node
	l.fields(n, "network.egress_budget", map[string]func(*yaml.Node){
		"bytes": func(v *yaml.Node) { bytesNode = v },
		"per":   func(v *yaml.Node) { perNode = v },
	})
	if n.Kind != yaml.MappingNode {
		return nil
	}
	if bytesNode == nil {
		l.at(nodePos(n), "network.egress_budget needs bytes")
	} else if s, ok := l.scalar(bytesNode, "network.egress_budget.bytes", "a size such as 50Mi", "!!int", "!!str"); ok {
		size, err := parseSize(s)
		if err != nil {
			l.at(nodePos(bytesNode), "network.egress_budget.bytes: %v", err)
		}
		b.Bytes = uint64(size)
	}
	if perNode == nil {
		l.at(nodePos(n), "network.egress_budget needs per")
	} else if s, ok := l.str(perNode, "network.egress_budget.per"); ok {
		d, err := parsePositiveDuration(s)
		if err != nil {
			l.at(nodePos(perNode), "network.egress_budget.per: %v", err)
		}
		b.Per = d
	}
	return &b
}

func (l *loader) limits(n *yaml.Node, lim *Limits) {
	l.fields(n, "limits", map[string]func(*yaml.Node){
		"memory": func(v *yaml.Node) {
			lim.MemoryBytes = l.number(v, "limits.memory", "a size such as 512Mi", parseSize, "!!int", "!!str")
		},
		"pids": func(v *yaml.Node) {
			lim.Pids = l.number(v, "limits.pids", "a whole number", parsePids, "!!int")
		},
		"cpu": func(v *yaml.Node) {
			lim.CPUMillis = l.number(v, "limits.cpu", "a number of cores such as 1.5", parseCPU, "!!int", "!!float", "!!str")
		},
	})
}

func (l *loader) number(v *yaml.Node, where, want string, parse func(string) (int64, error), tags ...string) int64 {
	s, ok := l.scalar(v, where, want, tags...)
	if !ok {
		return 0
	}
	n, err := parse(s)
	if err != nil {
		l.at(nodePos(v), "%s: %v", where, err)
	}
	return n
}

func (l *loader) onViolation(n *yaml.Node) OnViolation {
	ov := DefaultOnViolation()
	action := func(v *yaml.Node, where string, dst *Action) {
		s, ok := l.str(v, where)
		if !ok {
			return
		}
		a, err := parseAction(s)
		if err != nil {
			l.at(nodePos(v), "%s: %v", where, err)
			return
		}
		*dst = a
	}
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		var a Action
		action(n, "on_violation", &a)
		if a != "" {
			ov = OnViolation{File: a, Exec: a, Network: a}
		}
		return ov
	}
	if n.Kind == yaml.SequenceNode {
		l.at(nodePos(n), "on_violation must be deny, kill or a mapping {file, exec, network}, got a list")
		return ov
	}
	l.fields(n, "on_violation", map[string]func(*yaml.Node){
		"file":    func(v *yaml.Node) { action(v, "on_violation.file", &ov.File) },
		"exec":    func(v *yaml.Node) { action(v, "on_violation.exec", &ov.Exec) },
		"network": func(v *yaml.Node) { action(v, "on_violation.network", &ov.Network) },
	})
	return ov
}

func (l *loader) env(n *yaml.Node, e *rawEnv) {
	l.fields(n, "env", map[string]func(*yaml.Node){
		"pass": func(v *yaml.Node) {
			for _, item := range l.seq(v, "env.pass") {
				if name, ok := l.str(item, "env.pass entry"); ok {
					if err := checkEnvName(name); err != nil {
						l.at(nodePos(item), "env.pass: %v", err)
						continue
					}
					e.pass = append(e.pass, envName{name: name, at: nodePos(item)})
				}
			}
		},
		"set":     func(v *yaml.Node) { e.set = l.envEntries(v, "env.set", l.envValue) },
		"secrets": func(v *yaml.Node) { e.secrets = l.envEntries(v, "env.secrets", l.path) },
	})
	l.checkEnvOverlap(e)
}

func (l *loader) envEntries(n *yaml.Node, where string, value func(*yaml.Node, string) (pathValue, bool)) []envEntry {
	var out []envEntry
	for _, kv := range l.pairs(n, where) {
		if err := checkEnvName(kv.key); err != nil {
			l.at(nodePos(kv.keyNode), "%s: %v", where, err)
			continue
		}
		if pv, ok := value(kv.v, where+"."+kv.key); ok {
			out = append(out, envEntry{name: kv.key, at: nodePos(kv.keyNode), value: pv})
		}
	}
	return out
}

// envValue reads an env.set value: any string, variables allowed anywhere,
// but never something that looks like a credential.
func (l *loader) envValue(n *yaml.Node, where string) (pathValue, bool) {
	s, ok := l.str(n, where)
	if !ok {
		if isNull(n) {
			l.at(nodePos(n), "%s: missing value (write \"\" for an empty one)", where)
		}
		return pathValue{}, false
	}
	if strings.IndexByte(s, 0) >= 0 {
		l.at(nodePos(n), "%s contains a NUL byte", where)
		return pathValue{}, false
	}
	if kind := detectSecret(s); kind != "" {
		l.at(nodePos(n), "%s looks like %s: a profile must not carry secrets; put the value in a file readable only by root and name it in env.secrets", where, kind)
		return pathValue{}, false
	}
	t, err := parseTemplate(s)
	if err != nil {
		l.at(nodePos(n), "%s: %v", where, err)
		return pathValue{}, false
	}
	return pathValue{raw: s, tmpl: t, at: nodePos(n)}, true
}

// checkEnvOverlap rejects a variable named in more than one of pass, set and
// secrets: which value wins would be a guess.
func (l *loader) checkEnvOverlap(e *rawEnv) {
	type origin struct {
		section string
		at      pos
	}
	seen := map[string]origin{}
	note := func(name, section string, at pos) {
		if first, dup := seen[name]; dup {
			if first.section == section {
				l.at(at, "env.%s lists %s twice (first at line %d)", section, name, first.at.Line)
			} else {
				l.at(at, "env var %s is already in env.%s (line %d): name it in one of pass, set and secrets", name, first.section, first.at.Line)
			}
			return
		}
		seen[name] = origin{section, at}
	}
	for _, p := range e.pass {
		note(p.name, "pass", p.at)
	}
	for _, s := range e.set {
		note(s.name, "set", s.at)
	}
	for _, s := range e.secrets {
		note(s.name, "secrets", s.at)
	}
}
