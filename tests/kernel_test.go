package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/features"
	"github.com/mcpjail/mcpjail/sandbox/features/confinement"
	"github.com/mcpjail/mcpjail/tests/internal/e2e"
)

// The suite runs on this project's machines (Landlock ABI 7, hybrid cgroups)
// and inside Debian's 6.1 kernel (tests/vm: Landlock ABI 2, pure cgroup v2,
// no cgroup UNIX socket hooks). It reads what the kernel offers with the
// probes of `mcpjail doctor` and asserts what mcpjail promises there: a layer
// the kernel lacks makes every run refuse (125) unless --allow-degraded, and a
// degraded run still enforces what the other layers can.

// Names of the layers mcpjail reports missing, as they start in its
// refusals and degraded events.
const (
	gapLandlock         = "landlock (not available"
	gapLandlockTruncate = "landlock truncate right"
	gapLandlockTCP      = "landlock TCP rules"
	gapLandlockScopes   = "landlock signal and abstract UNIX socket scoping"
	gapUnixFilter       = "eBPF UNIX socket filter"
)

// expectHost says the suite runs on this project's machines, whose facts
// (DESIGN.md) it then asserts; the Makefile sets it, the kernel VM does not.
func expectHost() bool { return os.Getenv("MCPJAIL_EXPECT_HOST") == "1" }

// kernelGaps lists the layers mcpjail must report missing for any profile on
// a kernel with report r.
func kernelGaps(r features.Report) []string {
	var gaps []string
	switch abi := r.Landlock.UsableABI; {
	case r.Landlock.Status != confinement.LandlockEnabled:
		gaps = append(gaps, gapLandlock)
	default:
		if abi < 3 {
			gaps = append(gaps, gapLandlockTruncate)
		}
		if abi < 4 {
			gaps = append(gaps, gapLandlockTCP)
		}
		if abi < 6 {
			gaps = append(gaps, gapLandlockScopes)
		}
	}
	if p, ok := r.BPFProbe(features.ProbeConnectUnix); !ok || !p.OK {
		gaps = append(gaps, gapUnixFilter)
	}
	return gaps
}

// probeKernel fills suite.kernel and suite.gaps once, before any test.
func probeKernel(ctx context.Context) {
	suite.kernel = features.Probe(ctx)
	suite.gaps = kernelGaps(suite.kernel)
	if len(suite.gaps) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: kernel %s lacks %s: jailed runs pass --allow-degraded\n",
			suite.kernel.Kernel, strings.Join(suite.gaps, "; "))
	}
}

// kernelLacks reports whether this kernel lacks the layer gap. When it does,
// it first checks that the run whose events are given said so (a degraded
// event naming it): what cannot hold on this kernel is replaced by the check
// that mcpjail did not hide it. The caller then skips with the reason.
func kernelLacks(t *testing.T, events []audit.Event, gap string) bool {
	t.Helper()
	for _, g := range suite.gaps {
		if g != gap {
			continue
		}
		for _, e := range eventsOf(events, audit.KindDegraded) {
			if strings.Contains(e.Reason, gap) {
				return true
			}
		}
		t.Errorf("kernel %s lacks %q, but no degraded event of the run says so:\n%s", suite.kernel.Kernel, gap, formatEvents(events))
		return true
	}
	return false
}

func TestKernelFactsOfThisHost(t *testing.T) {
	l := suite.kernel.Landlock
	t.Logf("kernel %s: Landlock %s, cgroup %s, layers missing for every run: %v", suite.kernel.Kernel, l.Describe(), suite.kernel.Cgroup.Mode, suite.gaps)
	if !expectHost() {
		t.Skip("MCPJAIL_EXPECT_HOST is not 1: this kernel is not one of this project's machines, whose facts this test asserts")
	}
	if l.ABI != 7 || len(suite.gaps) > 0 {
		t.Errorf("this project's machines have Landlock ABI 7 and every layer; probed ABI %d, gaps %v", l.ABI, suite.gaps)
	}
	if suite.kernel.Cgroup.Mode != features.CgroupHybrid {
		t.Errorf("this project's machines have hybrid cgroups, probed %s", suite.kernel.Cgroup.Mode)
	}
}

// TestMissingLayersAreRefusedUnlessDegraded: on a kernel that lacks a layer,
// a run is refused (125) naming each missing layer; with --allow-degraded it
// runs, warns once per layer, and a TCP connect outside the profile is still
// refused (by the eBPF cgroup hooks when Landlock has no TCP rules).
func TestMissingLayersAreRefusedUnlessDegraded(t *testing.T) {
	requireRoot(t)
	allowed, denied := listenLoopback(t), listenLoopback(t)
	profile := hostileProfileFile(t, "e2e-gaps", networkProfile(allowed.port(), "deny"))
	argv := []string{suite.hostile, "attempt", "tcp_connect", denied.Addr().String()}

	strict := jailSpec{profile: profile, strict: true}.run(t, nil, argv...)
	if len(suite.gaps) == 0 {
		if strict.code != 0 {
			t.Fatalf("a kernel with every layer refused the run: exit %d\nstderr:\n%s", strict.code, strict.stderr)
		}
		if d := eventsOf(strict.events, audit.KindDegraded); len(d) > 0 {
			t.Errorf("degraded events on a kernel with every layer:\n%s", formatEvents(d))
		}
	} else {
		if strict.code != 125 || strict.stdout != "" {
			t.Fatalf("exit %d, stdout %q: want 125 and no server output\nstderr:\n%s", strict.code, strict.stdout, strict.stderr)
		}
		refusals := eventsOf(strict.events, audit.KindRefuse)
		if len(refusals) != 1 || len(eventsOf(strict.events, audit.KindStart)) != 0 {
			t.Fatalf("want one refuse event and no start:\n%s", formatEvents(strict.events))
		}
		for _, gap := range suite.gaps {
			if !strings.Contains(refusals[0].Reason, gap) || !strings.Contains(strict.stderr, gap) {
				t.Errorf("the refusal does not name %q:\nevent: %s\nstderr:\n%s", gap, refusals[0].Reason, strict.stderr)
			}
		}
	}

	degraded := jailSpec{profile: profile, allowDegraded: true}.run(t, nil, argv...)
	if degraded.code != 0 {
		t.Fatalf("exit %d with --allow-degraded\nstderr:\n%s", degraded.code, degraded.stderr)
	}
	r := decodeAttempt(t, degraded.stdout)
	if suite.kernel.Landlock.UsableABI < 4 {
		// No Landlock TCP rule: the refusal can only be the eBPF hook's.
		expectDenied(t, r, "EPERM")
		target := denied.Addr().String() + "/tcp"
		if !findEvent(degraded.events, denyEvent(audit.KindConnect, target)) {
			t.Errorf("no eBPF connect deny event for %s:\n%s", target, formatEvents(degraded.events))
		}
	} else {
		expectDenied(t, r, "EACCES", "EPERM")
	}
	if n := denied.accepted.Load(); n != 0 {
		t.Errorf("the listener outside the profile accepted %d connections", n)
	}
	warned := map[string]int{}
	for _, e := range eventsOf(degraded.events, audit.KindDegraded) {
		for _, gap := range suite.gaps {
			if strings.Contains(e.Reason, gap) {
				warned[gap]++
			}
		}
	}
	for _, gap := range suite.gaps {
		if warned[gap] != 1 {
			t.Errorf("%d degraded events name %q, want exactly 1:\n%s", warned[gap], gap, formatEvents(degraded.events))
		}
	}
}

// TestDoctorReportsTheKernelsGaps: `mcpjail doctor` names what the default
// profile lacks on this kernel, and exits 1 then; 0 when nothing is missing.
func TestDoctorReportsTheKernelsGaps(t *testing.T) {
	requireRoot(t)
	ctx := withTimeout(t, 2*time.Minute)
	cmd := exec.CommandContext(ctx, suite.mcpjail, "doctor")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code, err := e2e.ExitCode(cmd.Run())
	if err != nil {
		t.Fatal(err)
	}
	out := stdout.String()
	t.Logf("doctor (exit %d):\n%s", code, out)
	var verdict string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "default profile: ") {
			verdict = line
		}
	}
	l := suite.kernel.Landlock
	if !strings.Contains(out, "\nlandlock: "+l.Describe()) {
		t.Errorf("doctor's landlock line does not say %q", l.Describe())
	}
	switch {
	case l.Status == confinement.LandlockEnabled && l.UsableABI < 4:
		want := fmt.Sprintf("landlock TCP bind/connect rules (ABI 4, kernel has ABI %d)", l.UsableABI)
		if code != 1 || !strings.Contains(verdict, "missing") || !strings.Contains(verdict, want) {
			t.Errorf("exit %d, verdict %q: want 1 and a verdict naming %q", code, verdict, want)
		}
	case len(suite.gaps) == 0:
		if code != 0 || verdict != "default profile: every layer it needs is present" {
			t.Errorf("exit %d, verdict %q: want 0 and every layer present", code, verdict)
		}
	default:
		if code != 1 || !strings.Contains(verdict, "missing") {
			t.Errorf("exit %d, verdict %q: want 1 and a verdict naming what is missing (%v)", code, verdict, suite.gaps)
		}
	}
	if expectHost() && !strings.Contains(out, "\nlandlock: ABI 7 ") {
		t.Errorf("this project's machines have Landlock ABI 7; doctor says otherwise")
	}
}
