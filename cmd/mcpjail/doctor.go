package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/mcpjail/mcpjail/sandbox/features"
	"github.com/mcpjail/mcpjail/sandbox/features/confinement"
)

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "report which jail layers this kernel offers",
		Description: "Probes Landlock, cgroups, BPF program and attach types (by loading tiny programs),\n" +
			"bpffs, tracefs, lockdown, BTF and privileges, one line per item. It only reports:\n" +
			"it mounts nothing (run and the daemon mount bpffs and tracefs when they need them);\n" +
			"the BPF attach probes use a temporary empty cgroup that is removed at once.\n" +
			"Exits 0 when every layer the built-in default profile needs is present, 1 otherwise.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the report as one JSON object"},
		},
		Action: func(c *cli.Context) error {
			report := features.Probe(c.Context)
			missing := report.Missing(defaultProfileNeeds())
			if c.Bool("json") {
				out := doctorJSON{Report: report, MissingForDefault: append([]string{}, missing...)}
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				if err := enc.Encode(out); err != nil {
					return exitf(exitInternal, "write report: %v", err)
				}
				if len(missing) > 0 {
					// stdout stays pure JSON; the verdict goes to stderr.
					return exitf(exitFailure, "missing for the default profile: %s", strings.Join(missing, "; "))
				}
				return nil
			}
			writeDoctorText(c.App.Writer, report)
			if len(missing) > 0 {
				fmt.Fprintf(c.App.Writer, "default profile: missing %s\n", strings.Join(missing, "; "))
				return silentExit(exitFailure)
			}
			fmt.Fprintln(c.App.Writer, "default profile: every layer it needs is present")
			return nil
		},
	}
}

// doctorJSON is the --json output: the report plus the verdict.
type doctorJSON struct {
	features.Report
	MissingForDefault []string `json:"missing_for_default_profile"`
}

// defaultProfileNeeds is what the built-in default profile needs from the
// kernel, hard-coded until doctor asks the profiles package:
//   - Landlock ABI 6: truncate (ABI 3) keeps read-only paths read-only, TCP
//     rules (4) back the eBPF network layer, scoping (6) keeps signals and
//     abstract UNIX sockets inside; the confine layer counts less as a gap;
//   - the memory, pids and cpu controllers for its limits;
//   - the eBPF enforcement hooks: it allows no network, which the cgroup
//     sock_addr, sock_create and cgroup_skb programs enforce, and it kills on
//     exec violations through the syscall tracepoint.
func defaultProfileNeeds() features.Needs {
	return features.Needs{
		Landlock:    true,
		LandlockABI: 6,
		LandlockNet: true,
		Cgroups:     true,
		Controllers: []string{"memory", "pids", "cpu"},
		BPFProbes:   features.EnforcementProbes(),
	}
}

// writeDoctorText prints one line per item.
func writeDoctorText(w io.Writer, r features.Report) {
	line := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	line("kernel: %s", r.Kernel)
	line("root: %s", describePrivileges(r.Privileges))
	line("landlock: %s", describeLandlock(r.Landlock))
	for _, l := range describeCgroup(r) {
		line("%s", l)
	}
	line("bpffs: %s", describeMount(r.PseudoFS.BPFFS, features.BPFFSPath))
	line("tracefs: %s", describeMount(r.PseudoFS.TraceFS, features.TraceFSPath))
	for _, e := range r.PseudoFS.Errors {
		line("warning: %s", e)
	}
	if r.BTF {
		line("btf: yes (%s)", features.VmlinuxBTFPath)
	} else {
		line("btf: no (%s missing: tp_btf, lsm and fentry cannot load)", features.VmlinuxBTFPath)
	}
	line("lockdown: %s", describeLockdown(r.Security))
	line("lsm: %s", describeLSMs(r.Security))
	for _, p := range r.BPF {
		line("bpf %s: %s", p.Name, describeProbe(p))
	}
	line("bpf-lsm deny layer: %s", describeLSMLayer(r))
	for _, warning := range r.Warnings {
		line("warning: %s", warning)
	}
}

func describePrivileges(p confinement.Privileges) string {
	s := "no"
	if p.Root {
		s = "yes"
	}
	s += fmt.Sprintf(" (euid %d", p.EUID)
	if p.Error != "" {
		return s + "; capabilities unknown: " + p.Error + ")"
	}
	var have, lack []string
	for _, name := range confinement.CapabilityNames() {
		if p.Capabilities[name] {
			have = append(have, name)
		} else {
			lack = append(lack, name)
		}
	}
	if len(have) > 0 {
		s += "; " + strings.Join(have, " ")
	}
	if len(lack) > 0 {
		s += "; lacking " + strings.Join(lack, " ")
	}
	return s + ")"
}

func describeLandlock(l confinement.LandlockInfo) string {
	if l.Status != confinement.LandlockEnabled {
		return l.Describe()
	}
	parts := []string{"fs: " + strings.Join(l.FS, " ")}
	if len(l.Net) > 0 {
		parts = append(parts, "net: "+strings.Join(l.Net, " "))
	}
	if len(l.Scopes) > 0 {
		parts = append(parts, "scope: "+strings.Join(l.Scopes, " "))
	}
	return fmt.Sprintf("%s (%s)", l.Describe(), strings.Join(parts, ", "))
}

// describeCgroup gives the mode with mount points, the v2 details, the
// caller's groups, and where each default-profile controller lives.
func describeCgroup(r features.Report) []string {
	cg := r.Cgroup
	var mounts, self []string
	if cg.V2 != nil {
		mounts = append(mounts, "v2 "+cg.V2.Mount)
		self = append(self, "v2="+cg.V2.Self)
	}
	var v1 []string
	for _, h := range cg.V1 {
		key := strings.Join(h.Controllers, ",")
		if h.Name != "" {
			key = "name=" + h.Name
		}
		v1 = append(v1, key+"="+h.Mount)
		self = append(self, key+"="+h.Self)
	}
	if len(v1) > 0 {
		mounts = append(mounts, "v1 "+strings.Join(v1, " "))
	}
	lines := []string{fmt.Sprintf("cgroup: %s (%s)", cg.Mode, strings.Join(mounts, ", "))}
	if cg.Mode == features.CgroupNone {
		lines[0] = "cgroup: none (no cgroup hierarchy mounted)"
	}
	if r.CgroupError != "" {
		lines = append(lines, "cgroup error: "+r.CgroupError)
	}
	if cg.LibraryMode != "" && cg.LibraryMode != cg.Mode {
		lines = append(lines, fmt.Sprintf("cgroup warning: containerd/cgroups sees %s", cg.LibraryMode))
	}
	if cg.V2 != nil {
		kill := "unknown"
		if cg.V2.Kill != nil {
			kill = yesNo(*cg.V2.Kill)
		}
		lines = append(lines, fmt.Sprintf("cgroup v2: controllers %s (enabled for children of the root: %s; offered to the caller's children: %s), cgroup.kill %s",
			listOrNone(cg.V2.RootControllers), listOrNone(cg.V2.RootSubtreeControl), listOrNone(cg.V2.SelfControllers), kill))
	}
	if len(self) > 0 {
		lines = append(lines, "cgroup self: "+strings.Join(self, " "))
	}
	var ctrl []string
	for _, c := range defaultProfileNeeds().Controllers {
		where := cg.ControllerHierarchy(c)
		if where == "" {
			where = "missing"
		}
		ctrl = append(ctrl, c+"="+where)
	}
	return append(lines, "cgroup controllers: "+strings.Join(ctrl, " "))
}

func describeMount(mounted bool, path string) string {
	if mounted {
		return "mounted at " + path
	}
	return "not mounted at " + path + " (run and daemon mount it when needed)"
}

func describeLockdown(s features.SecurityInfo) string {
	return withReason(s.Lockdown, s.LockdownNote)
}

func describeLSMs(s features.SecurityInfo) string {
	if s.LSMs == nil {
		return withReason("unknown", s.LSMNote)
	}
	return fmt.Sprintf("%s (bpf: %s)", strings.Join(s.LSMs, ","), yesNo(s.BPFLSM != nil && *s.BPFLSM))
}

func describeProbe(p features.ProbeResult) string {
	if p.OK {
		return withReason("ok", p.Note)
	}
	return fmt.Sprintf("unavailable (%s: %s)", p.Stage, p.Error)
}

func withReason(s, reason string) string {
	if reason == "" {
		return s
	}
	return s + " (" + reason + ")"
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, " ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// describeLSMLayer says whether the optional BPF-LSM deny layer is active:
// it is where every one of its hooks loads and attaches.
func describeLSMLayer(r features.Report) string {
	for _, name := range features.LSMProbes() {
		p, ok := r.BPFProbe(name)
		if !ok || !p.OK {
			return "unavailable (runs use the other layers; a profile with require: [bpf-lsm] is refused)"
		}
	}
	return "active (exec, open and connect are also refused in the LSM hooks)"
}
