package profiles

import (
	"cmp"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// Vars are the values of a profile's variables for one run. ${PROFILE_DIR}
// comes from the profile itself.
type Vars struct {
	Home    string // home directory of the user the server runs as
	Workdir string // --workdir, default the current directory
	TmpDir  string // the private per-run directory mcpjail creates
}

// Compile expands variables and produces the Policy for one run. It reports
// every problem at once: a variable without a value, a path that is relative
// after expansion, an allowed path inside a denied one. The Policy shares no
// slice or map with p.
func (p *Profile) Compile(v Vars) (*Policy, error) {
	c := &compiler{errs: errs{file: p.file}, p: p, vars: v}
	pol := &Policy{
		Name:        p.name,
		Description: p.description,
		Source:      p.source,
		Server:      c.server(),
		Filesystem:  c.filesystem(),
		Network:     c.network(),
		Limits:      p.limits,
		Env:         c.env(),
		OnViolation: p.onViolation,
		Require:     slices.Clone(p.require),
	}
	if err := c.list.err(); err != nil {
		return nil, err
	}
	return pol, nil
}

type compiler struct {
	errs
	p    *Profile
	vars Vars
}

func (c *compiler) lookup(name string) (string, error) {
	var v string
	switch name {
	case varHome:
		v = c.vars.Home
	case varWorkdir:
		v = c.vars.Workdir
	case varTmpdir:
		v = c.vars.TmpDir
	case varProfileDir:
		if c.p.builtin {
			return "", errors.New("${PROFILE_DIR} is not available in a built-in profile")
		}
		v = c.p.dir
	default:
		return "", fmt.Errorf("unknown variable ${%s}", name) // Parse rejects these first
	}
	if v == "" {
		return "", fmt.Errorf("${%s} has no value for this run", name)
	}
	if !filepath.IsAbs(v) {
		return "", fmt.Errorf("${%s} is %q, which is not an absolute path", name, v)
	}
	// Cleaned so that "${WORKDIR}/x" with WORKDIR "/w/" does not become "/w//x".
	return filepath.Clean(v), nil
}

// located is an expanded path and where its source was written.
type located struct {
	path string
	at   pos
}

// expandPath expands pv and requires the result to be absolute; it returns
// the cleaned path.
func (c *compiler) expandPath(pv pathValue, where string) (string, bool) {
	s, err := pv.tmpl.expand(c.lookup)
	if err != nil {
		c.at(pv.at, "%s %q: %v", where, pv.raw, err)
		return "", false
	}
	if !filepath.IsAbs(s) {
		c.at(pv.at, "%s %q expands to the relative path %q", where, pv.raw, s)
		return "", false
	}
	return filepath.Clean(s), true
}

func (c *compiler) expandPaths(pvs []pathValue, where string) []located {
	var out []located
	for _, pv := range pvs {
		if s, ok := c.expandPath(pv, where); ok {
			out = append(out, located{s, pv.at})
		}
	}
	return out
}

func (c *compiler) server() Server {
	s := Server{SHA256: c.p.server.sha256, User: c.p.server.user}
	if pv := c.p.server.executable; pv != nil {
		s.Executable, _ = c.expandPath(*pv, "server.executable")
	}
	return s
}

func (c *compiler) filesystem() Filesystem {
	read := c.expandPaths(c.p.fs.read, "filesystem.read")
	write := c.expandPaths(c.p.fs.write, "filesystem.write")
	exec := c.expandPaths(c.p.fs.exec, "filesystem.exec")
	deny := c.expandPaths(c.p.fs.deny, "filesystem.deny")
	// Deny wins over an allowed parent; an allowed path at or beneath a denied
	// one would be a contradiction the kernel cannot express, so it is an error.
	for _, allowed := range []struct {
		kind  string
		paths []located
	}{{"read", read}, {"write", write}, {"exec", exec}} {
		for _, a := range allowed.paths {
			for _, d := range deny {
				if within(a.path, d.path) {
					c.at(a.at, "%s path %s lies inside denied path %s (line %d)", allowed.kind, a.path, d.path, d.at.Line)
				}
			}
		}
	}
	c.checkBreadth(c.p.fs.read, "filesystem.read", read)
	c.checkBreadth(c.p.fs.exec, "filesystem.exec", exec)
	c.checkBreadth(c.p.fs.write, "filesystem.write", write)
	return Filesystem{Read: sortedPaths(read), Write: sortedPaths(write), Exec: sortedPaths(exec), Deny: sortedPaths(deny)}
}

// systemDirs are what no write rule may cover, whole: a server that can
// write one of them can change what the host runs (a cron job, a unit, a
// shell's startup file, a library), and as root without capabilities it
// still owns their root-owned files.
var systemDirs = []string{"/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
	"/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/usr", "/var"}

// checkBreadth refuses a rule that expands to the whole filesystem, and a
// write rule that covers a system directory whole. The usual way in is a
// variable: an MCP client that starts servers from / makes ${WORKDIR} /.
func (c *compiler) checkBreadth(raws []pathValue, where string, paths []located) {
	for _, l := range paths {
		raw := ""
		for _, pv := range raws {
			if pv.at == l.at {
				raw = pv.raw
			}
		}
		hint := ""
		if strings.Contains(raw, "${"+varWorkdir+"}") {
			hint = "; pass --workdir with the directory the server is for"
		}
		if l.path == "/" {
			c.at(l.at, "%s %q expands to /, the whole filesystem%s", where, raw, hint)
			continue
		}
		if where != "filesystem.write" {
			continue
		}
		for _, d := range systemDirs {
			if within(d, l.path) {
				c.at(l.at, "%s %q expands to %s, which would let the server rewrite all of %s: write rules may not cover a system directory whole (%s)%s",
					where, raw, l.path, d, strings.Join(systemDirs, " "), hint)
				break
			}
		}
	}
}

// within reports whether path is dir or lies beneath it; both are clean.
func within(path, dir string) bool {
	return path == dir || dir == "/" || strings.HasPrefix(path, dir+"/")
}

// sortedPaths returns the paths sorted and without duplicates, never nil.
func sortedPaths(ls []located) []string {
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.path)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (c *compiler) network() Network {
	n := Network{
		Egress: make([]EgressRule, 0, len(c.p.net.egress)),
		Unix:   sortedPaths(c.expandPaths(c.p.net.unix, "network.unix")),
		Bind:   normalizePorts(c.p.net.bind),
	}
	sorted := slices.Clone(c.p.net.egress)
	slices.SortFunc(sorted, compareDestinations)
	// Rules for the same prefix and protocol are merged into one whose ports
	// are the union (no ports means all ports), so consumers see each
	// destination once.
	for _, r := range sorted {
		if last := len(n.Egress) - 1; last >= 0 && compareDestinations(n.Egress[last], r) == 0 {
			merged := &n.Egress[last]
			if merged.AllPorts() || r.AllPorts() {
				merged.Ports = []PortRange{}
			} else {
				merged.Ports = normalizePorts(append(merged.Ports, r.Ports...))
			}
			continue
		}
		n.Egress = append(n.Egress, EgressRule{Prefix: r.Prefix, Ports: normalizePorts(r.Ports), Protocol: r.Protocol})
	}
	if b := c.p.net.budget; b != nil {
		budget := *b
		n.EgressBudget = &budget
	}
	return n
}

func compareDestinations(a, b EgressRule) int {
	return cmp.Or(
		a.Prefix.Addr().Compare(b.Prefix.Addr()),
		cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()),
		cmp.Compare(a.Protocol, b.Protocol),
	)
}

// normalizePorts returns a fresh, sorted list in which overlapping and
// adjacent ranges are merged, never nil.
func normalizePorts(in []PortRange) []PortRange {
	sorted := slices.Clone(in)
	slices.SortFunc(sorted, func(x, y PortRange) int { return cmp.Or(cmp.Compare(x.Lo, y.Lo), cmp.Compare(x.Hi, y.Hi)) })
	out := make([]PortRange, 0, len(sorted))
	for _, r := range sorted {
		if n := len(out); n > 0 && uint32(r.Lo) <= uint32(out[n-1].Hi)+1 {
			out[n-1].Hi = max(out[n-1].Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

func (c *compiler) env() Env {
	e := Env{
		Pass:    make([]string, 0, len(c.p.env.pass)),
		Set:     make([]EnvVar, 0, len(c.p.env.set)),
		Secrets: make([]EnvSecret, 0, len(c.p.env.secrets)),
	}
	for _, p := range c.p.env.pass {
		e.Pass = append(e.Pass, p.name)
	}
	slices.Sort(e.Pass)
	for _, s := range c.p.env.set {
		v, err := s.value.tmpl.expand(c.lookup)
		if err != nil {
			c.at(s.value.at, "env.set.%s: %v", s.name, err)
			continue
		}
		e.Set = append(e.Set, EnvVar{Name: s.name, Value: v})
	}
	slices.SortFunc(e.Set, func(a, b EnvVar) int { return cmp.Compare(a.Name, b.Name) })
	for _, s := range c.p.env.secrets {
		if path, ok := c.expandPath(s.value, "env.secrets."+s.name); ok {
			e.Secrets = append(e.Secrets, EnvSecret{Name: s.name, Path: path})
		}
	}
	slices.SortFunc(e.Secrets, func(a, b EnvSecret) int { return cmp.Compare(a.Name, b.Name) })
	return e
}
