package profiles

import (
	"errors"
	"fmt"
	"strings"
)

// Variables a profile may use. Their values depend on the user the server runs
// as and on the run, so they are substituted by Compile, not by Parse.
const (
	varHome       = "HOME"        // home of the user the server runs as
	varWorkdir    = "WORKDIR"     // --workdir, default the current directory
	varTmpdir     = "TMPDIR"      // private per-run directory mcpjail creates
	varProfileDir = "PROFILE_DIR" // directory holding the profile file
)

func knownVariable(name string) bool {
	switch name {
	case varHome, varWorkdir, varTmpdir, varProfileDir:
		return true
	}
	return false
}

const knownVariablesText = "${HOME}, ${WORKDIR}, ${TMPDIR}, ${PROFILE_DIR}"

// template is a string split into literal text and ${NAME} references.
type template []templatePart

// templatePart is either literal text (variable == "") or one variable.
type templatePart struct {
	literal  string
	variable string
}

// parseTemplate splits s at ${NAME} references. "$$" stands for a literal "$";
// any other "$" is an error so that a mistyped "$HOME" is never taken literally.
func parseTemplate(s string) (template, error) {
	var t template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t = append(t, templatePart{literal: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			lit.WriteByte(s[i])
			continue
		}
		rest := s[i+1:]
		switch {
		case strings.HasPrefix(rest, "$"):
			lit.WriteByte('$')
			i++
		case strings.HasPrefix(rest, "{"):
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return nil, fmt.Errorf("unterminated variable reference in %q (missing '}')", s)
			}
			name := rest[1:end]
			if !knownVariable(name) {
				return nil, fmt.Errorf("unknown variable ${%s} in %q (known: %s)", name, s, knownVariablesText)
			}
			flush()
			t = append(t, templatePart{variable: name})
			i += end + 1
		default:
			return nil, fmt.Errorf("stray '$' in %q: write ${NAME} for a variable or $$ for a literal '$'", s)
		}
	}
	flush()
	return t, nil
}

// checkPathTemplate enforces the shape of a path before expansion: absolute,
// or starting with exactly one variable followed by "/" or nothing. A variable
// in the middle ("/data${HOME}") or glued to text ("${HOME}.ssh") is a mistake.
func checkPathTemplate(raw string, t template) error {
	if raw == "" {
		return errors.New("empty path")
	}
	if strings.IndexByte(raw, 0) >= 0 {
		return fmt.Errorf("path %q contains a NUL byte", raw)
	}
	for i, p := range t {
		switch {
		case i == 0 && p.variable == "" && !strings.HasPrefix(p.literal, "/"):
			return fmt.Errorf("path %q is relative: paths must be absolute or start with a variable such as ${WORKDIR}", raw)
		case i > 0 && p.variable != "":
			return fmt.Errorf("${%s} in %q: a variable may only start a path", p.variable, raw)
		case i == 1 && !strings.HasPrefix(p.literal, "/"):
			return fmt.Errorf("path %q: write ${%s}/..., a '/' must follow the variable", raw, t[0].variable)
		}
	}
	return nil
}

// expand substitutes variables. lookup returns a variable's value or an error
// when it has none; an empty value is an error too, so "${HOME}/.ssh" can never
// silently become "/.ssh".
func (t template) expand(lookup func(name string) (string, error)) (string, error) {
	var b strings.Builder
	for _, p := range t {
		if p.variable == "" {
			b.WriteString(p.literal)
			continue
		}
		v, err := lookup(p.variable)
		if err != nil {
			return "", err
		}
		if v == "" {
			return "", fmt.Errorf("${%s} is empty", p.variable)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}
