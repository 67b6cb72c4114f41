// Package features probes what the running kernel offers the jail: Landlock,
// cgroups, BPF program and attach types, pseudo filesystems, lockdown, BTF and
// the caller's privileges. Every kernel feature probe of mcpjail lives here or
// in the subpackage confinement (Landlock, seccomp, capabilities: what the
// init step needs, without this package's eBPF and cgroup libraries), so that
// `mcpjail doctor`, the launcher (which fails closed when a layer a profile
// needs is missing) and the eBPF layer agree on the answers.
//
// Probing only looks, with one bounded exception: the BPF attach probes create
// a temporary empty cgroup and remove it, and detach everything they attach.
package features

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/features/confinement"
)

// VmlinuxBTFPath is where the kernel exposes its own BTF.
const VmlinuxBTFPath = "/sys/kernel/btf/vmlinux"

// Report is everything Probe learned about this kernel.
type Report struct {
	// Kernel is the release string from uname(2).
	Kernel     string                   `json:"kernel"`
	Privileges confinement.Privileges   `json:"privileges"`
	Landlock   confinement.LandlockInfo `json:"landlock"`
	Cgroup     CgroupInfo               `json:"cgroup"`
	// CgroupError is set when the cgroup state could not be read in full.
	CgroupError string       `json:"cgroup_error,omitempty"`
	PseudoFS    PseudoFS     `json:"pseudo_fs"`
	Security    SecurityInfo `json:"security"`
	// BTF says /sys/kernel/btf/vmlinux is present (tp_btf, lsm, fentry and
	// CO-RE need it).
	BTF bool          `json:"btf"`
	BPF []ProbeResult `json:"bpf"`
	// Warnings are problems of the probing itself, such as a temporary
	// cgroup that could not be removed.
	Warnings []string `json:"warnings,omitempty"`
}

// Probe examines the running kernel. It does not mount anything; the only
// change it makes is the short-lived probe cgroup (see package doc).
func Probe(ctx context.Context) Report {
	var r Report
	var uts unix.Utsname
	if err := unix.Uname(&uts); err == nil {
		r.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	r.Privileges = confinement.ProbePrivileges()
	r.Landlock = confinement.ProbeLandlock()
	cg, err := ProbeCgroup()
	r.Cgroup = cg
	if err != nil {
		r.CgroupError = err.Error()
	}
	r.PseudoFS = ProbePseudoFS()
	r.Security = ProbeSecurity(r.PseudoFS.SecurityFS)
	if _, err := os.Stat(VmlinuxBTFPath); err == nil {
		r.BTF = true
	} else if !errors.Is(err, fs.ErrNotExist) {
		r.Warnings = append(r.Warnings, fmt.Sprintf("stat %s: %v", VmlinuxBTFPath, err))
	}

	env := BPFProbeEnv{TraceFS: r.PseudoFS.TraceFS}
	if cg.V2 != nil {
		if dir, err := cg.V2.Dir(); err != nil {
			env.CgroupParentErr = err.Error()
		} else {
			env.CgroupParent = dir
		}
	}
	bpf, err := ProbeBPF(ctx, env)
	r.BPF = bpf
	if err != nil {
		r.Warnings = append(r.Warnings, err.Error())
	}

	// A v2 root has no cgroup.kill; with no other group to look at, ask a
	// fresh one.
	if cg.V2 != nil && cg.V2.Kill == nil && env.CgroupParent != "" && ctx.Err() == nil {
		if has, err := killFileInTempCgroup(env.CgroupParent); err != nil {
			r.Warnings = append(r.Warnings, fmt.Sprintf("check cgroup.kill: %v", err))
		} else {
			cg.V2.Kill = &has
		}
	}
	return r
}

// BPFProbe returns the result of the named probe.
func (r Report) BPFProbe(name string) (ProbeResult, bool) {
	i := slices.IndexFunc(r.BPF, func(p ProbeResult) bool { return p.Name == name })
	if i < 0 {
		return ProbeResult{}, false
	}
	return r.BPF[i], true
}

// Needs says which layers a run requires. The launcher fills it from a
// profile; the zero value needs nothing.
type Needs struct {
	// Landlock requires Landlock with at least LandlockABI; LandlockNet
	// requires its TCP bind/connect rules (ABI 4).
	Landlock    bool
	LandlockABI int
	LandlockNet bool
	// Cgroups requires a mounted cgroup hierarchy the caller can use;
	// Controllers names controllers (memory, pids, cpu) that must be
	// available to groups created beneath the caller.
	Cgroups     bool
	Controllers []string
	// BPFProbes names probes (Probe* constants) that must have succeeded;
	// EnforcementProbes() is the set the eBPF layer uses.
	BPFProbes []string
}

// Missing returns a human name for every layer n needs that r lacks, e.g.
// "landlock (not enabled in this kernel)" or "cgroup controller pids". An
// empty result means every need is met.
func (r Report) Missing(n Needs) []string {
	var missing []string
	if n.Landlock || n.LandlockNet || n.LandlockABI > 0 {
		missing = append(missing, r.missingLandlock(n)...)
	}
	if n.Cgroups || len(n.Controllers) > 0 {
		missing = append(missing, r.missingCgroups(n)...)
	}
	for _, name := range n.BPFProbes {
		p, ok := r.BPFProbe(name)
		switch {
		case !ok:
			missing = append(missing, fmt.Sprintf("bpf %s (not probed)", name))
		case !p.OK:
			missing = append(missing, fmt.Sprintf("bpf %s (%s: %s)", name, p.Stage, p.Error))
		}
	}
	return missing
}

func (r Report) missingLandlock(n Needs) []string {
	l := r.Landlock
	if l.Status != confinement.LandlockEnabled {
		return []string{"landlock (" + l.Describe() + ")"}
	}
	var missing []string
	if l.UsableABI < n.LandlockABI {
		missing = append(missing, fmt.Sprintf("landlock ABI %d (kernel has %s)", n.LandlockABI, l.Describe()))
	}
	if n.LandlockNet && l.UsableABI < 4 {
		missing = append(missing, fmt.Sprintf("landlock TCP bind/connect rules (ABI 4, kernel has %s)", l.Describe()))
	}
	return missing
}

func (r Report) missingCgroups(n Needs) []string {
	if r.CgroupError != "" {
		return []string{"cgroups (" + r.CgroupError + ")"}
	}
	if r.Cgroup.Mode == CgroupNone || r.Cgroup.Mode == "" {
		return []string{"cgroups (no cgroup hierarchy mounted)"}
	}
	var missing []string
	for _, c := range n.Controllers {
		if r.Cgroup.ControllerHierarchy(c) == "" {
			missing = append(missing, "cgroup controller "+c)
		}
	}
	return missing
}
