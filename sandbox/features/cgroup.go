package features

import (
	"bytes"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// CgroupMode is how cgroups are mounted on this host.
type CgroupMode string

const (
	// CgroupNone: no cgroup hierarchy is mounted.
	CgroupNone CgroupMode = "none"
	// CgroupV1: only v1 hierarchies are mounted.
	CgroupV1 CgroupMode = "v1"
	// CgroupHybrid: v2 is mounted (usually without controllers) next to v1
	// hierarchies that hold the controllers.
	CgroupHybrid CgroupMode = "hybrid"
	// CgroupV2: only the unified hierarchy holds controllers.
	CgroupV2 CgroupMode = "v2"
)

// v1Controllers are the controller names a v1 hierarchy's super options may
// carry; the other options (rw, xattr, name=, ...) are not controllers.
var v1Controllers = []string{
	"blkio", "cpu", "cpuacct", "cpuset", "debug", "devices", "freezer",
	"hugetlb", "memory", "misc", "net_cls", "net_prio", "perf_event", "pids", "rdma",
}

// CgroupInfo describes the cgroup hierarchies and where the caller sits in
// them. ParseCgroupInfo fills the mount and membership fields from text;
// ProbeCgroup also reads the v2 interface files and asks containerd/cgroups.
type CgroupInfo struct {
	Mode CgroupMode `json:"mode"`
	// V2 is the unified hierarchy, nil when it is not mounted.
	V2 *CgroupV2Hierarchy `json:"v2,omitempty"`
	// V1 holds the mounted v1 hierarchies (controllers and named ones such
	// as name=systemd), in mount order.
	V1 []CgroupV1Hierarchy `json:"v1,omitempty"`
	// LibraryMode is what containerd/cgroups.Mode() says; the sandbox creates
	// groups with that library, so a disagreement is worth a warning.
	LibraryMode CgroupMode `json:"library_mode,omitempty"`
}

// CgroupV2Hierarchy is the unified hierarchy.
type CgroupV2Hierarchy struct {
	// Mount is the mount point; MountRoot the hierarchy path mounted there.
	Mount     string `json:"mount"`
	MountRoot string `json:"mount_root"`
	// Self is the caller's cgroup as /proc/self/cgroup names it.
	Self string `json:"self"`
	// RootControllers and RootSubtreeControl are the hierarchy root's
	// cgroup.controllers (available) and cgroup.subtree_control (enabled for
	// its children). SelfControllers is the caller's cgroup.controllers: what
	// the caller may enable for the groups it creates beneath itself.
	RootControllers    []string `json:"root_controllers"`
	RootSubtreeControl []string `json:"root_subtree_control"`
	SelfControllers    []string `json:"self_controllers"`
	// Kill says whether non-root groups have cgroup.kill (Linux 5.14+); nil
	// when no non-root group was there to look at.
	Kill *bool `json:"cgroup_kill"`
}

// CgroupV1Hierarchy is one mounted v1 hierarchy.
type CgroupV1Hierarchy struct {
	Mount     string `json:"mount"`
	MountRoot string `json:"mount_root"`
	// Controllers are the controllers bound to this hierarchy (cpu,cpuacct
	// may share one); Name is set for a named hierarchy (name=systemd).
	Controllers []string `json:"controllers,omitempty"`
	Name        string   `json:"name,omitempty"`
	Self        string   `json:"self"`
}

// Dir is the directory of the caller's cgroup in the unified hierarchy.
func (h CgroupV2Hierarchy) Dir() (string, error) {
	return cgroupDir(h.Mount, h.MountRoot, h.Self)
}

// Dir is the directory of the caller's cgroup in this v1 hierarchy.
func (h CgroupV1Hierarchy) Dir() (string, error) {
	return cgroupDir(h.Mount, h.MountRoot, h.Self)
}

// cgroupDir maps a /proc/self/cgroup path onto a mount of its hierarchy. The
// mount may show only a sub-tree (a container's bind mount); a caller outside
// that sub-tree has no directory there.
func cgroupDir(mount, mountRoot, self string) (string, error) {
	if self == "" {
		return "", fmt.Errorf("caller's cgroup in the hierarchy at %s is unknown", mount)
	}
	rel, ok := strings.CutPrefix(self, mountRoot)
	if !ok || (mountRoot != "/" && rel != "" && !strings.HasPrefix(rel, "/")) {
		return "", fmt.Errorf("caller's cgroup %s is outside the sub-tree %s mounted at %s", self, mountRoot, mount)
	}
	return path.Join(mount, rel), nil
}

// V1Hierarchy returns the v1 hierarchy that holds controller (or, for
// "name=systemd", the named hierarchy).
func (c CgroupInfo) V1Hierarchy(controller string) (CgroupV1Hierarchy, bool) {
	for _, h := range c.V1 {
		if slices.Contains(h.Controllers, controller) || (h.Name != "" && "name="+h.Name == controller) {
			return h, true
		}
	}
	return CgroupV1Hierarchy{}, false
}

// ControllerHierarchy says where the groups the caller creates beneath itself
// can use controller: "v2" when the caller's v2 group offers it, "v1" when a
// v1 hierarchy holds it, "" when neither.
func (c CgroupInfo) ControllerHierarchy(controller string) string {
	if c.V2 != nil && slices.Contains(c.V2.SelfControllers, controller) {
		return "v2"
	}
	if _, ok := c.V1Hierarchy(controller); ok {
		return "v1"
	}
	return ""
}

// ParseCgroupInfo derives the cgroup mode, the hierarchies' mounts and the
// caller's place in each from /proc/self/mountinfo and /proc/self/cgroup.
func ParseCgroupInfo(mountinfo, procCgroup []byte) (CgroupInfo, error) {
	mounts, err := ParseMountInfo(mountinfo)
	if err != nil {
		return CgroupInfo{}, err
	}
	self, err := ParseProcCgroup(procCgroup)
	if err != nil {
		return CgroupInfo{}, err
	}
	selfV1 := make(map[string]string, len(self.V1))
	for raw, p := range self.V1 {
		selfV1[normalizeHierarchyKey(raw)] = p
	}
	var info CgroupInfo
	controllersInV1 := false
	seenV1 := map[string]bool{}
	for _, m := range mounts {
		switch m.FSType {
		case "cgroup2":
			if info.V2 == nil { // the first mount of a hierarchy is the one used
				info.V2 = &CgroupV2Hierarchy{Mount: m.Point, MountRoot: m.Root, Self: self.V2}
			}
		case "cgroup":
			h := CgroupV1Hierarchy{Mount: m.Point, MountRoot: m.Root}
			for _, opt := range m.SuperOptions {
				if name, ok := strings.CutPrefix(opt, "name="); ok {
					h.Name = name
				} else if slices.Contains(v1Controllers, opt) {
					h.Controllers = append(h.Controllers, opt)
				}
			}
			key := hierarchyKey(h.Controllers, h.Name)
			if key == "" || seenV1[key] {
				continue
			}
			seenV1[key] = true
			h.Self = selfV1[key]
			controllersInV1 = controllersInV1 || len(h.Controllers) > 0
			info.V1 = append(info.V1, h)
		}
	}
	switch {
	case info.V2 != nil && controllersInV1:
		info.Mode = CgroupHybrid
	case info.V2 != nil:
		info.Mode = CgroupV2
	case len(info.V1) > 0:
		info.Mode = CgroupV1
	default:
		info.Mode = CgroupNone
	}
	return info, nil
}

// hierarchyKey names a v1 hierarchy by its known controllers and name, sorted,
// so that a mount and a /proc/self/cgroup line of one hierarchy get one key.
func hierarchyKey(controllers []string, name string) string {
	parts := slices.Clone(controllers)
	if name != "" {
		parts = append(parts, "name="+name)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// normalizeHierarchyKey turns a /proc/self/cgroup controller list
// ("cpu,cpuacct", "name=systemd") into a hierarchyKey.
func normalizeHierarchyKey(raw string) string {
	var controllers []string
	var name string
	for _, part := range strings.Split(raw, ",") {
		if n, ok := strings.CutPrefix(part, "name="); ok {
			name = n
		} else if slices.Contains(v1Controllers, part) {
			controllers = append(controllers, part)
		}
	}
	return hierarchyKey(controllers, name)
}

// ProcCgroup is the caller's membership as /proc/self/cgroup lists it.
type ProcCgroup struct {
	// V2 is the path in the unified hierarchy ("0::PATH"), "" when absent.
	V2 string
	// V1 maps a hierarchy key ("memory", "cpu,cpuacct", "name=systemd") to
	// the path in that hierarchy.
	V1 map[string]string
}

// ParseProcCgroup parses /proc/<pid>/cgroup: "ID:CONTROLLERS:PATH" per line.
func ParseProcCgroup(data []byte) (ProcCgroup, error) {
	pc := ProcCgroup{V1: map[string]string{}}
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		// The path may itself contain ':', so split into three at most.
		parts := strings.SplitN(string(line), ":", 3)
		if len(parts) != 3 || !strings.HasPrefix(parts[2], "/") {
			return ProcCgroup{}, fmt.Errorf("/proc/self/cgroup line %d: malformed %q", i+1, line)
		}
		id, err := strconv.Atoi(parts[0])
		if err != nil || id < 0 {
			return ProcCgroup{}, fmt.Errorf("/proc/self/cgroup line %d: bad hierarchy id %q", i+1, parts[0])
		}
		if id == 0 && parts[1] == "" {
			pc.V2 = parts[2]
			continue
		}
		if parts[1] == "" {
			return ProcCgroup{}, fmt.Errorf("/proc/self/cgroup line %d: v1 hierarchy %d without controllers", i+1, id)
		}
		pc.V1[parts[1]] = parts[2]
	}
	return pc, nil
}
