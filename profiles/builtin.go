package profiles

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

//go:embed builtin/*.yaml
var builtinFS embed.FS

// DefaultProfileName is the built-in used when no profile is given.
const DefaultProfileName = "default"

// BuiltinInfo describes one built-in profile.
type BuiltinInfo struct {
	Name        string
	Description string
}

// Builtin parses the embedded profile called name. Each call returns a fresh
// Profile. Built-ins may not use ${PROFILE_DIR}: they have no directory.
func Builtin(name string) (*Profile, error) {
	var data []byte
	err := fs.ErrNotExist
	if name != "" && !strings.ContainsAny(name, "/.") {
		data, err = builtinFS.ReadFile("builtin/" + name + ".yaml")
	}
	if err != nil {
		return nil, fmt.Errorf("unknown built-in profile %q (built-ins: %s)", name, strings.Join(builtinNames(), ", "))
	}
	return parse("builtin:"+name, "builtin:"+name, "", true, data)
}

// Builtins lists the built-in profiles sorted by name. The embedded profiles
// are covered by tests, so one that does not parse is a build defect and
// panics rather than being silently left out.
func Builtins() []BuiltinInfo {
	var out []BuiltinInfo
	for _, name := range builtinNames() {
		p, err := Builtin(name)
		if err != nil {
			panic(fmt.Sprintf("profiles: embedded built-in %q is invalid: %v", name, err))
		}
		out = append(out, BuiltinInfo{Name: name, Description: p.Description()})
	}
	return out
}

func builtinNames() []string {
	entries, err := fs.ReadDir(builtinFS, "builtin")
	if err != nil {
		panic(fmt.Sprintf("profiles: read embedded built-ins: %v", err)) // cannot happen with go:embed
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Resolve loads a profile named on the command line: a value containing "/"
// or ending in .yaml or .yml is a file, anything else a built-in name.
func Resolve(nameOrPath string) (*Profile, error) {
	if strings.Contains(nameOrPath, "/") || path.Ext(nameOrPath) == ".yaml" || path.Ext(nameOrPath) == ".yml" {
		return LoadFile(nameOrPath)
	}
	p, err := Builtin(nameOrPath)
	if err != nil {
		return nil, fmt.Errorf("%w; to load a file, give a path such as ./%s.yaml", err, nameOrPath)
	}
	return p, nil
}
