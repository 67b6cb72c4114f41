package features

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// privateMountsEnv makes the test binary run privateMountsHelper instead of
// the tests. The helper runs in a private mount namespace, so it can mount
// securityfs, bpffs and tracefs without touching the host.
const privateMountsEnv = "MCPJAIL_FEATURES_PRIVATE_MOUNTS_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(privateMountsEnv) == "1" {
		os.Exit(privateMountsHelper())
	}
	os.Exit(m.Run())
}

// privateMountsResult is what the helper reports to the test.
type privateMountsResult struct {
	// Before and After surround a Probe run: Probe must mount nothing.
	Before, After PseudoFS
	// Ensured holds the results of EnsureBPFFS and EnsureTraceFS, twice each.
	Ensured     map[string][2]bool
	EnsureError string
	// Report is a Probe run with securityfs, bpffs and tracefs mounted.
	Report Report
	// BPFFSBefore and BPFFSAfter list /sys/fs/bpf around that run: nothing
	// may be pinned. (A fresh bpffs may hold the kernel's preloaded
	// maps.debug and progs.debug.)
	BPFFSBefore, BPFFSAfter []string
}

func privateMountsHelper() int {
	var res privateMountsResult
	res.Before = ProbePseudoFS()
	Probe(context.Background())
	res.After = ProbePseudoFS()

	res.Ensured = map[string][2]bool{}
	if err := ensurePrivateMounts(&res); err != nil {
		res.EnsureError = err.Error()
	}
	res.BPFFSBefore = listDir(BPFFSPath)
	res.Report = Probe(context.Background())
	res.BPFFSAfter = listDir(BPFFSPath)
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func listDir(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	names := []string{}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func ensurePrivateMounts(res *privateMountsResult) error {
	if mounted, err := isMountedFS(SecurityFSPath, unix.SECURITYFS_MAGIC); err != nil {
		return err
	} else if !mounted {
		if err := unix.Mount("securityfs", SecurityFSPath, "securityfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount securityfs: %w", err)
		}
	}
	for name, ensure := range map[string]func() (bool, error){"bpffs": EnsureBPFFS, "tracefs": EnsureTraceFS} {
		var got [2]bool
		for i := range got {
			mounted, err := ensure()
			if err != nil {
				return fmt.Errorf("ensure %s: %w", name, err)
			}
			got[i] = mounted
		}
		res.Ensured[name] = got
	}
	return nil
}

// runPrivateMountsHelper re-runs this test binary in a new mount namespace;
// Go makes the child's mounts private before it execs.
func runPrivateMountsHelper(t *testing.T) privateMountsResult {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), privateMountsEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper: %v\n%s", err, stderr.String())
	}
	var res privateMountsResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("helper output %q: %v", stdout.String(), err)
	}
	return res
}

func TestKernelProbeWithPseudoFilesystems(t *testing.T) {
	requireRoot(t)
	hostBefore := ProbePseudoFS()
	res := runPrivateMountsHelper(t)
	if hostAfter := ProbePseudoFS(); hostAfter.BPFFS && !hostBefore.BPFFS || hostAfter.TraceFS && !hostBefore.TraceFS ||
		hostAfter.SecurityFS && !hostBefore.SecurityFS {
		t.Errorf("the helper's mounts leaked to the host: before %+v, after %+v", hostBefore, hostAfter)
	}

	if fmt.Sprint(res.Before) != fmt.Sprint(res.After) {
		t.Errorf("Probe changed the mounts: before %+v, after %+v", res.Before, res.After)
	}
	if res.EnsureError != "" {
		t.Fatal(res.EnsureError)
	}
	// The first call mounts what was missing, the second finds it there.
	for name, wasMounted := range map[string]bool{"bpffs": res.Before.BPFFS, "tracefs": res.Before.TraceFS} {
		if got, want := res.Ensured[name], [2]bool{!wasMounted, false}; got != want {
			t.Errorf("Ensure %s returned mounted=%v, want %v", name, got, want)
		}
	}
	r := res.Report
	if fs := r.PseudoFS; !fs.BPFFS || !fs.TraceFS || !fs.SecurityFS {
		t.Errorf("after mounting, probe says %+v", fs)
	}
	if !slices.Equal(res.BPFFSBefore, res.BPFFSAfter) {
		t.Errorf("probing changed bpffs: before %v, after %v", res.BPFFSBefore, res.BPFFSAfter)
	}

	sec := r.Security
	if !slices.Contains([]string{"none", "integrity", "confidentiality"}, sec.Lockdown) || sec.BPFLSM == nil {
		t.Fatalf("securityfs mounted but lockdown/lsm unknown: %+v", sec)
	}
	// Without the BPF LSM active no lsm program can load. (With it active,
	// loading may still be refused, as on this project's machines.)
	lsm, _ := r.BPFProbe(ProbeLSM)
	if !*sec.BPFLSM && lsm.OK {
		t.Errorf("lsm program loaded although bpf is not an active LSM (%v)", sec.LSMs)
	}
	tp, _ := r.BPFProbe(ProbeTracepoint)
	if tp.OK && tp.Note != "" {
		t.Errorf("tracefs is mounted but the tracepoint was not attached: %+v", tp)
	}
	if expectHost() {
		if sec.Lockdown != "integrity" {
			t.Errorf("host lockdown is integrity, probe says %s", sec.Lockdown)
		}
		if !tp.OK || lsm.OK {
			t.Errorf("host attaches tracepoints and refuses lsm: tracepoint %+v, lsm %+v", tp, lsm)
		}
	}
}
