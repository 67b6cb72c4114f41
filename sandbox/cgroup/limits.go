package cgroup

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// requested reports whether the profile limits ctrl.
func requested(l Limits, ctrl string) bool {
	switch ctrl {
	case ctrlMemory:
		return l.MemoryBytes > 0
	case ctrlPids:
		return l.Pids > 0
	case ctrlCPU:
		return l.CPUMillis > 0
	}
	return false
}

// v1Resources is the containerd v1 resource value for one controller.
// withSwap also caps memory+swap (memory.memsw.limit_in_bytes) at the memory
// limit, so that a memory bomb is OOM-killed instead of being swapped out:
// the limit then means the same as on v2, where memory.swap.max is 0.
func v1Resources(ctrl string, l Limits, withSwap bool) (*specs.LinuxResources, error) {
	switch ctrl {
	case ctrlMemory:
		limit := l.MemoryBytes
		m := &specs.LinuxMemory{Limit: &limit}
		if withSwap {
			m.Swap = &limit
		}
		return &specs.LinuxResources{Memory: m}, nil
	case ctrlPids:
		pids := l.Pids
		return &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &pids}}, nil
	case ctrlCPU:
		quota, err := cpuQuotaUS(l.CPUMillis)
		if err != nil {
			return nil, err
		}
		period := uint64(cpuPeriodUS)
		return &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: &quota, Period: &period}}, nil
	}
	return nil, fmt.Errorf("no limit for controller %q", ctrl)
}

// v2Resources is the containerd v2 resource value for one controller.
// withSwap sets memory.swap.max to 0 for the reason given at v1Resources; it
// is only possible when the kernel accounts swap (the file exists).
func v2Resources(ctrl string, l Limits, withSwap bool) (*cgroup2.Resources, error) {
	switch ctrl {
	case ctrlMemory:
		limit := l.MemoryBytes
		m := &cgroup2.Memory{Max: &limit}
		if withSwap {
			var none int64
			m.Swap = &none
		}
		return &cgroup2.Resources{Memory: m}, nil
	case ctrlPids:
		return &cgroup2.Resources{Pids: &cgroup2.Pids{Max: l.Pids}}, nil
	case ctrlCPU:
		quota, err := cpuQuotaUS(l.CPUMillis)
		if err != nil {
			return nil, err
		}
		period := uint64(cpuPeriodUS)
		return &cgroup2.Resources{CPU: &cgroup2.CPU{Max: cgroup2.NewCPUMax(&quota, &period)}}, nil
	}
	return nil, fmt.Errorf("no limit for controller %q", ctrl)
}

// applyV1 writes ctrl's limit into the jail directory rel of hierarchy h.
// containerd's New on an existing directory only writes the values; the
// hierarchy handed to it is this one subsystem, so nothing else is touched.
func applyV1(h v1Hier, rel, ctrl string, l Limits) error {
	dir := h.dir(rel)
	res, err := v1Resources(ctrl, l, exists(filepath.Join(dir, "memory.memsw.limit_in_bytes")))
	if err != nil {
		return err
	}
	only := func() ([]cgroup1.Subsystem, error) { return []cgroup1.Subsystem{h.sub}, nil }
	if _, err := cgroup1.New(cgroup1.StaticPath(rel), res, cgroup1.WithHierarchy(only)); err != nil {
		return fmt.Errorf("set %s limit in %s: %w", ctrl, dir, err)
	}
	return nil
}

// applyV2 writes ctrl's limit into the jail directory dir under mount.
// Only containerd's value writer is used: its NewManager would also write
// cgroup.subtree_control in every ancestor up to the mount root, which are
// not ours to change (create.go enables controllers beneath our own cgroup).
func applyV2(mount, dir, ctrl string, l Limits) error {
	res, err := v2Resources(ctrl, l, exists(filepath.Join(dir, "memory.swap.max")))
	if err != nil {
		return err
	}
	group := strings.TrimPrefix(dir, mount)
	m, err := cgroup2.Load(group, cgroup2.WithMountpoint(mount))
	if err != nil {
		return fmt.Errorf("set %s limit in %s: %w", ctrl, dir, err)
	}
	if err := m.Update(res); err != nil {
		return fmt.Errorf("set %s limit in %s: %w", ctrl, dir, err)
	}
	return nil
}

// PidsLimitHits reports how often a fork or clone in the jail failed
// because the jail reached its pids limit: "max" of pids.events, in the v1
// pids hierarchy or the v2 directory. Threads count: each is a task.
func (g *Group) PidsLimitHits() (uint64, error) {
	return g.counter(ctrlPids, "pids.events", "pids.events", "max")
}
