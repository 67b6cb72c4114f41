// Package cgroup gives each jailed run its own cgroup: created beneath the
// cgroup mcpjail itself runs in (per hierarchy, under an "mcpjail" parent, never
// at a hierarchy's root), limited in memory, pids and cpu, killed as a whole,
// and removed without leftovers. It handles pure cgroup v2, hybrid (v2 for
// identity and cgroup.kill, v1 for the limits) and pure v1, detected at run time.
//
// Creation and limit values go through github.com/containerd/cgroups/v3; the
// lifecycle (exclusive mkdir, controller delegation, kill, removal) is done here
// on the cgroupfs files directly, because the library's helpers there do not fit
// a supervisor (see create.go and kill.go for the reasons).
package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	cgroups "github.com/containerd/cgroups/v3"
	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/profiles"
)

// Limits are the profile's cgroup limits; zero fields are not limited.
type Limits = profiles.Limits

// Mode is the cgroup layout of the machine.
type Mode string

const (
	ModeV2     Mode = "v2"     // unified hierarchy at /sys/fs/cgroup
	ModeHybrid Mode = "hybrid" // v1 controllers plus a v2 hierarchy at /sys/fs/cgroup/unified
	ModeV1     Mode = "v1"     // v1 hierarchies only
	ModeNone   Mode = "none"   // no cgroup filesystem mounted
)

const (
	// parentName is the directory, beneath the caller's own cgroup in every
	// hierarchy, that holds one directory per jail. It is shared by all jails
	// and never removed by this package.
	parentName = "mcpjail"
	// maxNameLen keeps names well below NAME_MAX; launcher names are
	// "<profile (≤64)>-<instance (12)>".
	maxNameLen = 128
)

// DetectMode reports the machine's cgroup layout, probed with statfs each
// process lifetime (the containerd helper caches the first answer).
func DetectMode() Mode {
	switch cgroups.Mode() {
	case cgroups.Unified:
		return ModeV2
	case cgroups.Hybrid:
		return ModeHybrid
	case cgroups.Legacy:
		return ModeV1
	default:
		return ModeNone
	}
}

// Group is one jail's cgroup: a directory of the same name in each hierarchy
// it uses. Its methods are safe to call from one goroutine at a time.
type Group struct {
	mode Mode
	v2   string            // jail directory in the v2 hierarchy; "" in pure v1
	v1   map[string]string // v1 controller name → jail directory
	id   uint64            // v2 cgroup id; 0 without a v2 directory
	err  error             // set by FromSpec for a spec it refuses
}

// Mode reports the layout the group was created for.
func (g *Group) Mode() Mode { return g.mode }

// V2Path is the absolute path of the jail's v2 directory ("" in pure v1).
func (g *Group) V2Path() string { return g.v2 }

// ID is the v2 cgroup id, the value bpf_get_current_cgroup_id returns for the
// jail's processes; 0 in pure v1. On 64-bit kernels it is the kernfs inode
// number of the v2 directory.
func (g *Group) ID() uint64 { return g.id }

// OpenV2 opens the v2 directory as an O_PATH descriptor for
// SysProcAttr.UseCgroupFD (clone3 CLONE_INTO_CGROUP). The caller closes it.
func (g *Group) OpenV2() (*os.File, error) {
	if g.err != nil {
		return nil, g.err
	}
	if g.v2 == "" {
		return nil, fmt.Errorf("open v2 cgroup: none in cgroup %s mode", g.mode)
	}
	fd, err := unix.Open(g.v2, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open v2 cgroup %s: %w", g.v2, err)
	}
	return os.NewFile(uintptr(fd), g.v2), nil
}

// Paths lists every directory of the jail, the v2 one first.
func (g *Group) Paths() []string {
	var out []string
	if g.v2 != "" {
		out = append(out, g.v2)
	}
	seen := map[string]bool{g.v2: true}
	for _, c := range sortedKeys(g.v1) {
		if d := g.v1[c]; !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// Spec is what another process (the cleanup guard) needs to kill and remove
// the same group: JSON-serializable, produced by Group.Spec.
type Spec struct {
	Mode Mode              `json:"mode"`
	V2   string            `json:"v2,omitempty"`
	V1   map[string]string `json:"v1,omitempty"` // controller → directory
}

// Spec describes the group for FromSpec.
func (g *Group) Spec() Spec {
	s := Spec{Mode: g.mode, V2: g.v2}
	if len(g.v1) > 0 {
		s.V1 = make(map[string]string, len(g.v1))
		for c, d := range g.v1 {
			s.V1[c] = d
		}
	}
	return s
}

// FromSpec rebuilds a group from a Spec so that it can be killed and removed
// by a process other than its creator. The spec is checked first: every
// directory must be a jail directory ("…/mcpjail/<name>", the same name
// everywhere) on a cgroup filesystem. A refused spec yields a Group whose
// every method fails with the reason, so a guard fed garbage kills nothing.
func FromSpec(s Spec) *Group {
	g := &Group{mode: s.Mode, v2: s.V2}
	if len(s.V1) > 0 {
		g.v1 = make(map[string]string, len(s.V1))
		for c, d := range s.V1 {
			g.v1[c] = d
		}
	}
	if err := validateSpec(s); err != nil {
		g.err = fmt.Errorf("refuse cgroup spec: %w", err)
		return g
	}
	if err := checkOnCgroupFS(s); err != nil {
		g.err = fmt.Errorf("refuse cgroup spec: %w", err)
		return g
	}
	if g.v2 != "" {
		// A directory that is already gone has no id; removal is then a no-op.
		if id, err := inodeOf(g.v2); err == nil {
			g.id = id
		}
	}
	return g
}

// Controller names, the same in v1 and v2.
const (
	ctrlMemory  = "memory"
	ctrlPids    = "pids"
	ctrlCPU     = "cpu"
	ctrlFreezer = "freezer" // v1 only; used to kill when there is no v2 cgroup.kill
)

// checkOnCgroupFS makes sure each directory's parent (the "mcpjail" parent)
// lies on the expected cgroup filesystem. A parent that no longer exists is
// accepted: there is nothing left to remove there.
func checkOnCgroupFS(s Spec) error {
	check := func(dir string, magic int64, what string) error {
		var st unix.Statfs_t
		if err := unix.Statfs(filepath.Dir(dir), &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil
			}
			return fmt.Errorf("statfs %s: %w", filepath.Dir(dir), err)
		}
		if st.Type != magic {
			return fmt.Errorf("%s is not on a %s filesystem", dir, what)
		}
		return nil
	}
	if s.V2 != "" {
		if err := check(s.V2, unix.CGROUP2_SUPER_MAGIC, "cgroup2"); err != nil {
			return err
		}
	}
	for _, c := range sortedKeys(s.V1) {
		if err := check(s.V1[c], unix.CGROUP_SUPER_MAGIC, "cgroup v1"); err != nil {
			return err
		}
	}
	return nil
}

func inodeOf(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return st.Ino, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
