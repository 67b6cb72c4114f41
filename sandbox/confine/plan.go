// Package confine is the self-confinement that mcpjail's freshly started
// init process applies to itself right before it runs the MCP server:
// credentials, capabilities, no_new_privs, Landlock and a seccomp deny-list.
// Everything here is inherited across execve and can never be lifted, so the
// server and all its descendants run under it.
//
// NewPlan only computes (it changes nothing and may run in the launcher to
// report missing kernel features); Apply changes the calling process for good.
// ApplyReporting does the same with the seccomp deny-list's refusals handed
// to a supervisor (sandbox/seccompnotify), so that each one is an event.
package confine

import (
	"fmt"
	"slices"

	"github.com/landlock-lsm/go-landlock/landlock"
	"golang.org/x/net/bpf"

	"github.com/mcpjail/mcpjail/profiles"
)

// Creds is who the server runs as.
type Creds struct {
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups"`
}

// Spec is everything confinement needs; it is sent as JSON over a pipe to
// the init process.
type Spec struct {
	Policy profiles.Policy `json:"policy"`
	// Creds nil keeps the current uid/gid (unprivileged runs, or root without
	// a server user: root with no capabilities).
	Creds *Creds `json:"creds,omitempty"`
	// Degraded (--allow-degraded) applies what the kernel has and reports
	// the rest through Missing instead of refusing.
	Degraded bool `json:"degraded"`
}

// PathRule is one Landlock "path beneath" rule: Access granted on the
// hierarchy at Path (a resolved, symlink-free path).
type PathRule struct {
	Path   string               `json:"path"`
	Dir    bool                 `json:"dir"`
	Access landlock.AccessFSSet `json:"access"`
	// dev and ino identify the file the plan examined; Apply refuses to put
	// the rule on anything else.
	dev, ino uint64
}

// SkippedPath is a profile path that produced no rule, and why.
type SkippedPath struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Plan is what Apply will do on this kernel. The exported fields are for
// logs and `mcpjail doctor`; they are not inputs (changing them does not
// change what Apply does).
type Plan struct {
	// LandlockABI is the ABI used: the kernel's, after go-landlock's errata
	// check, capped to the newest ABI go-landlock knows. 0 means no Landlock.
	LandlockABI int                   `json:"landlock_abi"`
	HandledFS   landlock.AccessFSSet  `json:"handled_fs"`
	HandledNet  landlock.AccessNetSet `json:"handled_net"`
	Scoped      landlock.ScopedSet    `json:"scoped"`
	PathRules   []PathRule            `json:"path_rules"`
	ConnectTCP  []uint16              `json:"connect_tcp,omitempty"`
	BindTCP     []uint16              `json:"bind_tcp,omitempty"`
	ConnectUDP  []uint16              `json:"connect_udp,omitempty"`
	BindUDP     []uint16              `json:"bind_udp,omitempty"`
	// Skipped lists profile paths that produced no rule (missing paths,
	// symlinks met while walking down to a deny rule).
	Skipped []SkippedPath `json:"skipped,omitempty"`
	// Notes explain choices a reader of the plan should know about.
	Notes []string `json:"notes,omitempty"`
	// Seccomp is the deny-list that will be installed (empty without seccomp).
	Seccomp []DeniedSyscall `json:"seccomp,omitempty"`
	// SeccompEvents says ApplyReporting hands the list's refusals to a
	// supervisor (the kernel can).
	SeccompEvents bool `json:"seccomp_events"`

	spec    Spec
	kernel  kernelFacts
	missing []string
	// seccompProg is the compiled deny-list; nil when the kernel has no seccomp.
	seccompProg []bpf.Instruction
	// seccompNotifyProg is the deny-list that notifies instead of answering
	// where a refusal is reported by notification; nil when the kernel
	// cannot hand out a listener.
	seccompNotifyProg []bpf.Instruction
}

// NewPlan computes, without applying anything, what Apply will do on this
// kernel. It fails on an unusable spec or an unsupported architecture, never
// on a missing kernel feature: those are reported by Missing.
func NewPlan(spec Spec) (*Plan, error) {
	facts, err := detectKernel()
	if err != nil {
		return nil, err
	}
	return buildPlan(spec, facts)
}

// Missing lists the layers and rights the policy needs that this kernel
// lacks, e.g. "landlock TCP rules (ABI 4, kernel has 2)". Empty when the
// confinement is complete.
func (p *Plan) Missing() []string { return slices.Clone(p.missing) }

// buildPlan is NewPlan with the kernel facts as an input, so that plans for
// other kernels can be tested here.
func buildPlan(spec Spec, k kernelFacts) (*Plan, error) {
	if spec.Creds != nil && !k.canSetIDs {
		return nil, fmt.Errorf("run as uid %d gid %d: this process lacks CAP_SETUID/CAP_SETGID", spec.Creds.UID, spec.Creds.GID)
	}
	if k.lastCap < 0 || k.lastCap > 63 {
		return nil, fmt.Errorf("cap_last_cap %d out of range", k.lastCap)
	}
	if k.landlockABI < 0 || k.landlockABI >= len(abiConfigs) {
		return nil, fmt.Errorf("landlock ABI %d out of range", k.landlockABI)
	}
	p := &Plan{spec: spec, kernel: k, LandlockABI: k.landlockABI}
	if err := p.planLandlock(); err != nil {
		return nil, err
	}
	if err := p.planSeccomp(); err != nil {
		return nil, err
	}
	if !k.canSetPCap {
		p.Notes = append(p.Notes, "capability bounding set left as is: this process lacks CAP_SETPCAP (unprivileged run); "+
			"no_new_privs keeps execve from granting anything from it")
	}
	return p, nil
}

func (p *Plan) planSeccomp() error {
	binds := len(p.spec.Policy.Network.Bind) > 0
	prog, err := seccompProgram(false, binds) // also refuses unsupported architectures
	if err != nil {
		return err
	}
	if !p.kernel.seccomp {
		p.missing = append(p.missing, "seccomp filter (kernel built without CONFIG_SECCOMP_FILTER)")
		return nil
	}
	p.seccompProg = prog
	p.Seccomp = SeccompDenyList()
	if !p.kernel.seccompListener {
		p.missing = append(p.missing, "seccomp refusal events ("+p.kernel.seccompListenerWhy+
			"): bpf, ptrace, mount and the rest of the deny-list are refused without an event")
		return nil
	}
	if p.seccompNotifyProg, err = seccompProgram(true, binds); err != nil {
		return err
	}
	p.SeccompEvents = true
	return nil
}
