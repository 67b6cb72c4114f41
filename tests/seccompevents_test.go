package tests

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/tests/internal/e2e"
)

// seccompEvent matches the event of a call the seccomp deny-list refused:
// kind syscall, the target (or, ending in a space, its prefix), layer
// seccomp, verdict deny, from pid (0: any) of the fixture.
func seccompEvent(target string, pid int) func(audit.Event) bool {
	return func(e audit.Event) bool {
		sameTarget := e.Target == target || strings.HasSuffix(target, " ") && strings.HasPrefix(e.Target, target)
		return e.Kind == audit.KindSyscall && sameTarget && e.Layer == audit.LayerSeccomp && e.Verdict == audit.VerdictDeny &&
			e.Action == audit.ActionNone && (pid == 0 || e.PID == pid) && e.Comm == "hostile" &&
			strings.Contains(e.Reason, "refused with EPERM by the seccomp deny-list")
	}
}

// TestSeccompRefusalsAreEvents: each call of the deny-list the fixture
// makes still fails with EPERM, and is an event naming the call and its
// arguments, the server's pid as the host sees it, and its name.
func TestSeccompRefusalsAreEvents(t *testing.T) {
	requireRoot(t)
	w := t.TempDir()
	h := startHostile(t, w, hostileExecProfile)
	server := h.serverPID(t)
	for _, c := range []struct {
		name   string
		args   map[string]any
		target string
	}{
		{"bpf", map[string]any{"cmd": "map_create"}, "bpf BPF_MAP_CREATE"},
		{"bpf", map[string]any{"cmd": "prog_load"}, "bpf BPF_PROG_LOAD"},
		{"ptrace", nil, "ptrace PTRACE_ATTACH pid "}, // its own child, by its pid inside the jail
		{"io_uring_setup", nil, "io_uring_setup entries 1"},
		{"unshare", nil, "unshare CLONE_NEWUSER"},
		{"mount", map[string]any{"target": w}, "mount MS_NOSUID|MS_NODEV"},
		{"keyctl", nil, "keyctl KEYCTL_JOIN_SESSION_KEYRING"},
	} {
		t.Run(c.target, func(t *testing.T) {
			expectDenied(t, h.attempt(t, c.name, c.args), "EPERM")
			if _, ok := waitForEvent(t, h.auditLog, seccompEvent(c.target, server)); !ok {
				t.Errorf("no seccomp deny event %q from pid %d:\n%s", c.target, server, formatEvents(readEvents(t, h.auditLog)))
			}
		})
	}
	if code := h.close(t); code != 0 {
		t.Errorf("exit status %d, want 0 (a refused call does not end the server)\nstderr:\n%s", code, h.stderr.String())
	}
}

// floodCalls is the length of the flood: the fixture's loop also makes a
// tenth as many untimed warm-up calls first.
const floodCalls = 10_000

// TestSeccompRefusalFloodIsFolded: a loop of refused calls runs to its end
// (each one EPERM), and its events fold into at most two records per
// second of the run whose counts add up to every call.
func TestSeccompRefusalFloodIsFolded(t *testing.T) {
	requireRoot(t)
	spec := jailSpec{profile: hostileProfileFile(t, "e2e-flood", hostileExecProfile), name: "e2e-flood"}
	start := time.Now()
	out := spec.run(t, nil, suite.hostile, "loop", "bpf", "map_create", strconv.Itoa(floodCalls))
	wall := time.Since(start)
	if out.code != 0 || !strings.HasPrefix(out.stdout, "elapsed_ns=") {
		t.Fatalf("exit status %d, stdout %q: want the loop to finish with every call refused\nstderr:\n%s", out.code, out.stdout, out.stderr)
	}
	total, records := 0, 0
	for _, e := range out.events {
		if !seccompEvent("bpf BPF_MAP_CREATE", 0)(e) {
			continue
		}
		records++
		total += max(e.Count, 1)
	}
	// Every call is reported. A call can be reported twice: when a signal
	// (Go's preemption) interrupts the caller just as mcpjail answers, older
	// kernels (seen on 6.1) drop the answer and restart the call, which then
	// arrives as a new notification. Those repeats stay a small fraction.
	want := floodCalls + floodCalls/10
	if total < want || total > want+want/100 {
		t.Errorf("events count %d refused calls, want %d (at most 1%% more: restarted calls):\n%s", total, want, formatEvents(out.events))
	}
	// The first of a window is written at once, its repeats as one record when it closes.
	if most := 2 * (int(wall/time.Second) + 1); records > most {
		t.Errorf("%d records for the flood in %v, want at most %d", records, wall.Round(time.Millisecond), most)
	}
	t.Logf("%d refused calls in %d records, the run took %v (%s)", total, records, wall.Round(time.Millisecond), strings.TrimSpace(out.stdout))
}

// floodingRun is a jailed fixture looping on a refused call until killed.
type floodingRun struct {
	cmd      *os.Process
	wait     func() (int, error)
	marker   string
	server   int
	cgroups  []string
	auditLog string
}

func startFlood(t *testing.T, name string) *floodingRun {
	t.Helper()
	marker := newMarker(t)
	spec := jailSpec{profile: hostileProfileFile(t, name, hostileExecProfile), name: name}
	cmd, auditLog := spec.command(t, withTimeout(t, 2*time.Minute), suite.hostile, "-marker", marker, "loop", "bpf", "map_create", "10000000")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &floodingRun{cmd: cmd.Process, marker: marker, auditLog: auditLog}
	r.wait = func() (int, error) { return e2e.ExitCode(cmd.Wait()) }
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		for _, p := range procsWithArg(marker) {
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
	})
	r.server = waitForProcs(t, marker, suite.hostile, 1)[0].pid
	r.cgroups = jailCgroupDirs(t, r.server, name)
	if _, ok := waitForEvent(t, auditLog, seccompEvent("bpf BPF_MAP_CREATE", r.server)); !ok {
		t.Fatalf("the flood is not reported:\n%s", stderr.String())
	}
	return r
}

// stopWithARefusalWaiting stops mcpjail, the process that answers, and
// waits until a thread of the server sits in bpf(2) waiting for it.
func (r *floodingRun) stopWithARefusalWaiting(t *testing.T) {
	t.Helper()
	if err := r.cmd.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if left := eventually(time.Minute, func() []string {
		if waitingInBPF(r.server) {
			return nil
		}
		return []string{"no thread waits in bpf"}
	}); len(left) > 0 {
		t.Fatalf("pid %d: %v", r.server, left)
	}
}

// waitingInBPF reports whether a thread of pid is inside bpf(2): with its
// answer outstanding, it stays there (/proc/TID/syscall starts with the
// number of the call a blocked thread is in).
func waitingInBPF(pid int) bool {
	tasks, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	for _, task := range tasks {
		f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "task", task.Name(), "syscall"))
		if err != nil {
			continue
		}
		line, _ := bufio.NewReader(f).ReadString(' ')
		f.Close()
		if strings.TrimSpace(line) == strconv.Itoa(unix.SYS_BPF) {
			return true
		}
	}
	return false
}

func (r *floodingRun) assertNothingLeft(t *testing.T, deadline time.Duration) {
	t.Helper()
	if left := eventually(deadline, func() []string { return procStrings(procsWithArg(r.marker)) }); len(left) > 0 {
		t.Errorf("processes of the run survived: %v", left)
	}
	if left := eventually(deadline, func() []string { return existing(r.cgroups) }); len(left) > 0 {
		t.Errorf("cgroups of the run were not removed: %v", left)
	}
	if left := eventually(deadline, func() []string { return tmpLeftovers(readEvents(t, r.auditLog)) }); len(left) > 0 {
		t.Errorf("the run's private TMPDIR was not removed: %v", left)
	}
}

// TestNoLeftoversAfterARefusalWaits: a server killed while its refused
// call waits for mcpjail's answer, or mcpjail killed while it holds the
// answer back, leaves nothing behind.
func TestNoLeftoversAfterARefusalWaits(t *testing.T) {
	requireRoot(t)
	t.Run("server killed", func(t *testing.T) {
		r := startFlood(t, "e2e-flood-server")
		r.stopWithARefusalWaiting(t)
		if err := syscall.Kill(r.server, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := r.cmd.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		code, err := r.wait()
		if err != nil || code != 137 {
			t.Errorf("exit status %d (%v), want 137 (the server was SIGKILLed)", code, err)
		}
		r.assertNothingLeft(t, 0)
		if exits := eventsOf(readEvents(t, r.auditLog), audit.KindExit); len(exits) != 1 {
			t.Errorf("want one exit event, got:\n%s", formatEvents(exits))
		}
	})
	t.Run("mcpjail killed", func(t *testing.T) {
		r := startFlood(t, "e2e-flood-mcpjail")
		r.stopWithARefusalWaiting(t)
		// The listener closes with mcpjail: the waiting call fails with
		// ENOSYS, and the parent-death signal and the guard end the rest.
		if err := r.cmd.Kill(); err != nil {
			t.Fatal(err)
		}
		r.wait()
		r.assertNothingLeft(t, cleanupDeadline)
	})
}

// TestSeccompRefusalsOfUnprivilegedRuns: as uid 65534 the user's own
// mcpjail answers and reports the refusals, through the daemon and, with
// --allow-degraded, without one (no PID namespace there).
func TestSeccompRefusalsOfUnprivilegedRuns(t *testing.T) {
	check := func(t *testing.T, out outcome) {
		t.Helper()
		if out.code != 0 {
			t.Fatalf("exit status %d, want 0\nstderr:\n%s", out.code, out.stderr)
		}
		if r := decodeAttempt(t, out.stdout); r.OK || r.Errno != "EPERM" {
			t.Fatalf("bpf as uid 65534: exit %d ok=%v errno=%q, want EPERM\nstderr:\n%s", out.code, r.OK, r.Errno, out.stderr)
		}
		if !findEvent(out.events, seccompEvent("bpf BPF_MAP_CREATE", 0)) {
			t.Errorf("no seccomp deny event in the user's audit log:\n%s", formatEvents(out.events))
		}
	}
	t.Run("through the daemon", func(t *testing.T) {
		d := startDaemon(t, listenLoopback(t).port(), "", nil)
		spec := d.nobody("e2e-deny", nobodyDir(t))
		spec.strict = false // a kernel with gaps (suite.gaps) runs degraded: this is about seccomp
		check(t, spec.run(t, nil, suite.hostile, "attempt", "bpf"))
	})
	t.Run("without a daemon", func(t *testing.T) {
		workdir, profile, _ := failClosedSetup(t)
		spec := jailSpec{profile: profile, workdir: workdir, asNobody: true, allowDegraded: true, env: defaultClientEnv()}
		check(t, spec.run(t, nil, suite.hostile, "attempt", "bpf"))
	})
}
