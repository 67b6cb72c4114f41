package features

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	ebpffeatures "github.com/cilium/ebpf/features"
)

// These tests run on the real kernel and check the probes against what the
// kernel itself says. MCPJAIL_EXPECT_HOST=1 (set by the Makefile on this
// project's machines) adds the facts measured there: Landlock ABI 7, hybrid
// cgroups, cgroup sock_addr attaches, BPF-LSM and fentry refused.

func inCI() bool       { return os.Getenv("CI") == "true" }
func expectHost() bool { return os.Getenv("MCPJAIL_EXPECT_HOST") == "1" }

// requireRoot skips outside CI and fails under CI=true when not root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if inCI() {
		t.Fatal("this test needs root (CI=true: a missing prerequisite is a failure)")
	}
	t.Skip("this test needs root (skipped: CI is not true)")
}

func TestKernelCgroupMatchesKernel(t *testing.T) {
	info, err := ProbeCgroup()
	if err != nil {
		t.Fatal(err)
	}
	// The sandbox creates groups with containerd/cgroups: both must agree.
	if info.Mode != info.LibraryMode {
		t.Errorf("mountinfo says %s, containerd/cgroups.Mode() says %s", info.Mode, info.LibraryMode)
	}
	// The kernel lists this process in the group the probe says it is in.
	pid := strconv.Itoa(os.Getpid())
	checkMember := func(name, dir string, err error) {
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		if !slices.Contains(strings.Fields(string(procs)), pid) {
			t.Errorf("%s: pid %s not in %s/cgroup.procs", name, pid, dir)
		}
	}
	if info.V2 != nil {
		dir, err := info.V2.Dir()
		checkMember("v2", dir, err)
		if len(info.V2.RootControllers) == 0 && len(info.V2.SelfControllers) > 0 {
			t.Errorf("caller offered %v while the root has none", info.V2.SelfControllers)
		}
	}
	for _, h := range info.V1 {
		dir, err := h.Dir()
		checkMember("v1 "+hierarchyKey(h.Controllers, h.Name), dir, err)
	}
	if expectHost() {
		if info.Mode != CgroupHybrid || info.V2 == nil || info.V2.Mount != "/sys/fs/cgroup/unified" {
			t.Errorf("host is hybrid with v2 at /sys/fs/cgroup/unified, probe says %s %+v", info.Mode, info.V2)
		}
		for _, c := range []string{"memory", "pids", "cpu"} {
			if where := info.ControllerHierarchy(c); where != "v1" {
				t.Errorf("host has %s in v1, probe says %q", c, where)
			}
		}
	}
}

func TestKernelBPFProbes(t *testing.T) {
	requireRoot(t)
	r := Probe(context.Background())
	if len(r.Warnings) > 0 {
		t.Errorf("warnings: %v", r.Warnings)
	}
	probe := func(name string) ProbeResult {
		t.Helper()
		p, ok := r.BPFProbe(name)
		if !ok {
			t.Fatalf("no result for %s", name)
		}
		return p
	}
	// cilium/ebpf's own feature tests: a type it calls unsupported must not
	// load here, a type it loads must not fail to load here.
	for name, pt := range map[string]ebpf.ProgramType{
		ProbeConnect4: ebpf.CGroupSockAddr, ProbeSockCreate: ebpf.CGroupSock,
		ProbeSKBEgress: ebpf.CGroupSKB, ProbeTracepoint: ebpf.TracePoint,
	} {
		p, err := probe(name), ebpffeatures.HaveProgramType(pt)
		loaded := p.OK || p.Stage == StageAttach
		if errors.Is(err, ebpf.ErrNotSupported) && loaded || err == nil && !loaded {
			t.Errorf("%s: probe %+v, cilium/ebpf HaveProgramType(%s) = %v", name, p, pt, err)
		}
	}
	if err := ebpffeatures.HaveMapType(ebpf.RingBuf); (err == nil) != probe(ProbeRingBuf).OK {
		t.Errorf("ring buffer: probe %+v, cilium/ebpf says %v", probe(ProbeRingBuf), err)
	}
	if !r.BTF {
		for _, name := range []string{ProbeTPBTF, ProbeLSM, ProbeFentry} {
			if probe(name).OK {
				t.Errorf("%s loaded without %s", name, VmlinuxBTFPath)
			}
		}
	}
	for _, p := range r.BPF {
		if !p.OK && (p.Stage == "" || p.Error == "") {
			t.Errorf("failure without stage or error: %+v", p)
		}
	}
	if !expectHost() {
		return
	}
	for _, name := range append(EnforcementProbes(), ProbeTPBTF) {
		if p := probe(name); !p.OK {
			t.Errorf("host loads %s, probe says %+v", name, p)
		}
	}
	if p := probe(ProbeConnect4); p.Note != "" {
		t.Errorf("cgroup/connect4 must be attached, not only loaded: %+v", p)
	}
	for _, name := range []string{ProbeLSM, ProbeFentry} {
		if p := probe(name); p.OK || p.Error != "operation not permitted" {
			t.Errorf("host refuses %s with EPERM, probe says %+v", name, p)
		}
	}
	needs := Needs{Landlock: true, LandlockABI: 7, LandlockNet: true, Cgroups: true,
		Controllers: []string{"memory", "pids", "cpu"}, BPFProbes: EnforcementProbes()}
	if missing := r.Missing(needs); len(missing) > 0 {
		t.Errorf("host misses %v", missing)
	}
	if missing := r.Missing(Needs{BPFProbes: []string{ProbeLSM}}); len(missing) != 1 {
		t.Errorf("BPF-LSM need not reported missing: %v", missing)
	}
}

func TestKernelProbeLeavesNothingBehind(t *testing.T) {
	requireRoot(t)
	cg, err := ProbeCgroup()
	if err != nil {
		t.Fatal(err)
	}
	parent := "" // without cgroup v2 the probes create no group
	if cg.V2 != nil {
		if parent, err = cg.V2.Dir(); err != nil {
			t.Fatal(err)
		}
	}
	fdsBefore := bpfFDs(t)
	// With the collector off, a dropped but unclosed object cannot be
	// rescued by cilium/ebpf's finalizers: its descriptor stays visible.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for _, ctx := range []context.Context{context.Background(), cancelled()} {
		r := Probe(ctx)
		if len(r.Warnings) > 0 {
			t.Errorf("warnings: %v", r.Warnings)
		}
		if leftovers := probeCgroups(t, parent); parent != "" && len(leftovers) > 0 {
			t.Errorf("probe cgroups left behind: %v", leftovers)
		}
		if fds := bpfFDs(t); !slices.Equal(fds, fdsBefore) {
			t.Errorf("BPF/perf descriptors before %v, after %v", fdsBefore, fds)
		}
	}
}

func TestKernelProbeHonoursCancellation(t *testing.T) {
	requireRoot(t)
	r := Probe(cancelled())
	p, ok := r.BPFProbe(ProbeConnect4)
	if !ok || p.OK || p.Stage != StageNotProbed || p.Error != context.Canceled.Error() {
		t.Fatalf("cancelled probe ran: %+v", p)
	}
	if len(r.BPF) != len(programProbes("", "", false))+2 {
		t.Fatalf("%d results, want one per probe: %+v", len(r.BPF), r.BPF)
	}
	for _, p := range r.BPF {
		if p.OK || p.Stage != StageNotProbed {
			t.Errorf("cancelled probe ran: %+v", p)
		}
	}
}

func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// probeCgroups lists the probe groups this process created under parent.
func probeCgroups(t *testing.T, parent string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(parent, fmt.Sprintf("%s%d-*", TempCgroupPrefix, os.Getpid())))
	if err != nil {
		t.Fatal(err)
	}
	return matches
}

// bpfFDs lists this process's open BPF object and perf event descriptors,
// which is what keeps a program, map, link or tracepoint attachment alive.
func bpfFDs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var fds []string
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // the directory's own descriptor, closed by now
		}
		if strings.HasPrefix(target, "anon_inode:bpf") || strings.Contains(target, "perf_event") {
			fds = append(fds, e.Name()+"="+target)
		}
	}
	return fds
}
