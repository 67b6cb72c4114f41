package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/tests/internal/e2e"
)

// nobodyProfile is what the fail-closed runs use: it asks for limits, which
// only cgroups can give, and allows reading one directory.
const nobodyProfile = `
filesystem:
  read: ["${WORKDIR}"]
  exec: ["${HOSTILE}"]
limits: {memory: 256Mi, pids: 64}
`

// failClosedSetup prepares, as root, a workdir and a profile that uid 65534
// can read, and a file it may read under the profile.
func failClosedSetup(t *testing.T) (workdir, profile, allowed string) {
	t.Helper()
	requireRoot(t)
	requireTool(t, setprivPath, "util-linux")
	workdir = nobodyDir(t)
	allowed = writeFile(t, workdir, "allowed.txt", "allowed\n", 0o644)
	profile = writeProfile(t, workdir, "e2e-nobody", strings.ReplaceAll(nobodyProfile, "${HOSTILE}", suite.hostile))
	return workdir, profile, allowed
}

// TestUnprivilegedRunFailsClosed runs mcpjail as uid 65534 with no daemon:
// it cannot create cgroups, so it must refuse and say why.
func TestUnprivilegedRunFailsClosed(t *testing.T) {
	workdir, profile, allowed := failClosedSetup(t)
	spec := jailSpec{profile: profile, workdir: workdir, asNobody: true, strict: true, env: defaultClientEnv()}
	out := spec.run(t, nil, suite.hostile, "attempt", "read_file", allowed)
	if out.code != 125 {
		t.Fatalf("exit status %d, want 125 (refused)\nstdout %q\nstderr:\n%s", out.code, out.stdout, out.stderr)
	}
	if out.stdout != "" {
		t.Errorf("the server ran although mcpjail refused: stdout %q", out.stdout)
	}
	if !strings.Contains(strings.ToLower(out.stderr), "cgroup") {
		t.Errorf("stderr does not name the missing cgroups layer:\n%s", out.stderr)
	}
	refusals := eventsOf(out.events, audit.KindRefuse)
	if len(refusals) != 1 || !strings.Contains(strings.ToLower(refusals[0].Reason), "cgroup") {
		t.Errorf("want one refuse event naming cgroups, got:\n%s", formatEvents(out.events))
	}
	if starts := eventsOf(out.events, audit.KindStart); len(starts) != 0 {
		t.Errorf("a refused run logged a start:\n%s", formatEvents(out.events))
	}
}

// TestUnprivilegedRunDegradedKeepsLandlock runs the same with
// --allow-degraded: the server runs under Landlock alone, which still
// denies what the profile does not allow, and mcpjail warns once per
// missing layer.
func TestUnprivilegedRunDegradedKeepsLandlock(t *testing.T) {
	workdir, profile, allowed := failClosedSetup(t)
	spec := jailSpec{profile: profile, workdir: workdir, asNobody: true, allowDegraded: true, env: defaultClientEnv()}

	denied := spec.run(t, nil, suite.hostile, "attempt", "read_file", "/etc/passwd")
	if denied.code != 0 {
		t.Fatalf("exit status %d, want 0\nstderr:\n%s", denied.code, denied.stderr)
	}
	if r := decodeAttempt(t, denied.stdout); r.OK || r.Errno != "EACCES" {
		t.Errorf("read of /etc/passwd outside the profile: ok=%v errno=%q, want EACCES from Landlock", r.OK, r.Errno)
	}
	ok := spec.run(t, nil, suite.hostile, "attempt", "read_file", allowed)
	if r := decodeAttempt(t, ok.stdout); ok.code != 0 || !r.OK {
		t.Errorf("read of %s inside the profile: exit %d, ok=%v errno=%q\nstderr:\n%s", filepath.Base(allowed), ok.code, r.OK, r.Errno, ok.stderr)
	}

	t.Run("TCP Fast Open", func(t *testing.T) {
		// sendto(MSG_FASTOPEN) connects without connect(2), where Landlock's
		// TCP rules never look (landlock-lsm/linux#41). With no eBPF layer
		// in this mode, the seccomp deny-list is what refuses it.
		ln := listenLoopback(t)
		out := spec.run(t, nil, suite.hostile, "attempt", "tcp_fastopen", ln.Addr().String())
		if r := decodeAttempt(t, out.stdout); r.OK || r.Errno != "EPERM" {
			t.Errorf("TCP Fast Open to %s: ok=%v errno=%q (%s), want EPERM from seccomp\nstderr:\n%s", ln.Addr(), r.OK, r.Errno, r.Detail, out.stderr)
		}
		if n := ln.accepted.Load(); n != 0 {
			t.Errorf("the listener outside the profile accepted %d connections", n)
		}
		if !findEvent(out.events, func(e audit.Event) bool {
			return e.Kind == audit.KindSyscall && e.Target == "sendto" && e.Layer == audit.LayerSeccomp && e.Verdict == audit.VerdictDeny
		}) {
			t.Errorf("no seccomp event for the refused sendto:\n%s", formatEvents(out.events))
		}
	})
	t.Run("signal scope", func(t *testing.T) {
		// Without a PID namespace the server can name processes outside the
		// jail; one of its own uid is fair game for kill(2) unless Landlock's
		// signal scope stops it.
		if kernelLacks(t, denied.events, gapLandlockScopes) {
			t.Skipf("Landlock %s has no signal scoping (ABI 6); mcpjail reported it missing", suite.kernel.Landlock.Describe())
		}
		testSignalScope(t, spec)
	})
	assertDegradedOnce(t, denied)
}

// testSignalScope makes the degraded jail signal a process of its own uid
// outside it: Landlock's signal scope must refuse.
func testSignalScope(t *testing.T, spec jailSpec) {
	victim := exec.Command(setprivPath, "--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "300")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { victim.Wait(); close(exited) }()
	t.Cleanup(func() { victim.Process.Kill(); <-exited })
	sig := spec.run(t, nil, suite.hostile, "attempt", "kill", strconv.Itoa(victim.Process.Pid), "15")
	if r := decodeAttempt(t, sig.stdout); r.OK || r.Errno != "EPERM" {
		t.Errorf("kill of a same-uid process outside the jail: ok=%v errno=%q (%s), want EPERM from Landlock's signal scope", r.OK, r.Errno, r.Detail)
	}
	select {
	case <-exited:
		t.Errorf("the process outside the jail died: %v", victim.ProcessState)
	case <-time.After(200 * time.Millisecond):
	}
}

// assertDegradedOnce checks that a degraded run reported the missing
// cgroups, and each missing layer once, as an event and on stderr.
func assertDegradedOnce(t *testing.T, denied outcome) {
	t.Helper()
	degraded := eventsOf(denied.events, audit.KindDegraded)
	if len(degraded) == 0 {
		t.Fatalf("no degraded event in the audit log:\n%s", formatEvents(denied.events))
	}
	seen := map[string]bool{}
	namesCgroups := false
	for _, e := range degraded {
		key := string(e.Layer) + "|" + e.Target + "|" + e.Reason
		if seen[key] {
			t.Errorf("missing layer reported twice: %s", key)
		}
		seen[key] = true
		namesCgroups = namesCgroups || strings.Contains(strings.ToLower(e.Reason+e.Target+string(e.Layer)), "cgroup")
	}
	if !namesCgroups {
		t.Errorf("no degraded event names cgroups:\n%s", formatEvents(degraded))
	}
	// Each warning once on stderr too.
	lines := map[string]int{}
	for _, line := range strings.Split(denied.stderr, "\n") {
		if strings.Contains(line, string(audit.KindDegraded)) {
			lines[line]++
		}
	}
	if len(lines) != len(degraded) {
		t.Errorf("%d distinct degraded warnings on stderr, %d degraded events:\n%s", len(lines), len(degraded), denied.stderr)
	}
	for line, n := range lines {
		if n > 1 {
			t.Errorf("warning printed %d times: %s", n, line)
		}
	}
}

func decodeAttempt(t *testing.T, stdout string) hostileResult {
	t.Helper()
	var r hostileResult
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("decode fixture output %q: %v", stdout, err)
	}
	return r
}

// TestInitStepMustBeMcpjailsOwn: mcpjail runs the init step from beside
// its own binary, and refuses (125, nothing started) one that is missing
// or that others than mcpjail's owner could have replaced.
func TestInitStepMustBeMcpjailsOwn(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	mcpjail, initStep := filepath.Join(dir, "mcpjail"), filepath.Join(dir, "mcpjail-init")
	for src, dst := range map[string]string{suite.mcpjail: mcpjail, filepath.Join(filepath.Dir(suite.mcpjail), "mcpjail-init"): initStep} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	profile := hostileProfileFile(t, "e2e-init-step", hostileExecProfile)
	run := func() (int, string) {
		t.Helper()
		cmd := exec.CommandContext(withTimeout(t, time.Minute), mcpjail, "run", "--daemon", "never", "--allow-degraded", "--profile", profile,
			"--", suite.hostile, "attempt", "self")
		cmd.Env = defaultClientEnv()
		out, err := cmd.CombinedOutput()
		code, err := e2e.ExitCode(err)
		if err != nil {
			t.Fatalf("run: %v\n%s", err, out)
		}
		return code, string(out)
	}
	if code, out := run(); code != 0 {
		t.Fatalf("with its own init step: exit %d\n%s", code, out)
	}
	if err := os.Chmod(initStep, 0o775); err != nil {
		t.Fatal(err)
	}
	if code, out := run(); code != 125 || !strings.Contains(out, "mcpjail-init") || !strings.Contains(out, "others than its owner") {
		t.Errorf("group-writable init step: exit %d, want 125 naming it\n%s", code, out)
	}
	if err := os.Remove(initStep); err != nil {
		t.Fatal(err)
	}
	if code, out := run(); code != 125 || !strings.Contains(out, "mcpjail-init") {
		t.Errorf("no init step: exit %d, want 125 naming it\n%s", code, out)
	}
}

// TestInitStepByHandChangesNothing: mcpjail-init run by hand, as root, in
// the host's namespaces, refuses (125) before it touches a mount: as PID 1
// it would remount /proc.
func TestInitStepByHandChangesNothing(t *testing.T) {
	requireRoot(t)
	initStep := filepath.Join(filepath.Dir(suite.mcpjail), "mcpjail-init")
	before, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"supervise"}, "runs only as PID 1"},
		{nil, "not by hand"},
	} {
		out, err := exec.CommandContext(withTimeout(t, time.Minute), initStep, tc.args...).CombinedOutput()
		code, err := e2e.ExitCode(err)
		if err != nil || code != 125 || !strings.Contains(string(out), tc.says) {
			t.Errorf("mcpjail-init %v by hand: exit %d (%v), want 125 and a message that says %q\n%s", tc.args, code, err, tc.says, out)
		}
	}
	after, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Errorf("mcpjail-init by hand changed the mounts:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestInitStepDeathIsNotTheServersExit: when the init step dies before it
// execs the server (here: a pids or memory limit too small for the init
// step itself), the run is refused with 125 and says so, naming the limit;
// it is not reported as the server's exit. A server that itself exits 125 is still the
// server's exit.
func TestInitStepDeathIsNotTheServersExit(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	profileFor := func(pids int) string {
		return writeProfile(t, dir, "e2e-pids"+strconv.Itoa(pids), "filesystem:\n  exec: [\""+suite.hostile+"\"]\nlimits: {pids: "+strconv.Itoa(pids)+"}\n")
	}
	// Two tasks: fewer than PID 1 and PID 2 of the init step need with
	// their Go runtime threads.
	out := jailSpec{profile: profileFor(2)}.run(t, nil, suite.hostile, "exit", "0")
	if out.code != 125 || !strings.Contains(out.stderr, "ended before it started the server") || !strings.Contains(out.stderr, "limits.pids (2)") {
		t.Errorf("pids 2: exit %d, want 125 with a message naming limits.pids (2)\nstderr:\n%s", out.code, out.stderr)
	}
	if exits := eventsOf(out.events, audit.KindExit); len(exits) != 0 {
		t.Errorf("pids 2: the init step's death was logged as the server's exit:\n%s", formatEvents(out.events))
	}
	if refusals := eventsOf(out.events, audit.KindRefuse); len(refusals) != 1 || !strings.Contains(refusals[0].Reason, "limits.pids") {
		t.Errorf("pids 2: want one refuse event naming limits.pids, got:\n%s", formatEvents(out.events))
	}
	// 256 KiB of memory: less than the init step's Go runtime touches, so
	// the kernel OOM-kills it before the server.
	memory := writeProfile(t, dir, "e2e-mem", "filesystem:\n  exec: [\""+suite.hostile+"\"]\nlimits: {memory: 256Ki}\n")
	out = jailSpec{profile: memory}.run(t, nil, suite.hostile, "exit", "0")
	if out.code != 125 || !strings.Contains(out.stderr, "ended before it started the server") || !strings.Contains(out.stderr, "limits.memory (262144 bytes)") {
		t.Errorf("memory 256Ki: exit %d, want 125 with a message naming limits.memory\nstderr:\n%s", out.code, out.stderr)
	}
	out = jailSpec{profile: profileFor(64)}.run(t, nil, suite.hostile, "exit", "125")
	exits := eventsOf(out.events, audit.KindExit)
	if out.code != 125 || len(exits) != 1 || exits[0].ExitCode == nil || *exits[0].ExitCode != 125 || len(eventsOf(out.events, audit.KindRefuse)) != 0 {
		t.Errorf("server exiting 125: exit %d, want 125 reported as the server's exit, events:\n%s\nstderr:\n%s", out.code, formatEvents(out.events), out.stderr)
	}
}
