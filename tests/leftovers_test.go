package tests

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/tests/internal/e2e"
)

// cleanupDeadline bounds asynchronous cleanup after mcpjail is SIGKILLed
// (the PID namespace's init and the cgroup guard act after it is gone).
const cleanupDeadline = 15 * time.Second

// orphanRun is a jailed fixture that left a setsid'd child behind it: the
// server, its orphaned child, and the jail's cgroup directories.
type orphanRun struct {
	cmd      *os.Process
	wait     func() (int, error)
	stdin    io.WriteCloser
	marker   string
	server   int // the fixture's host pid
	cgroups  []string
	auditLog string
}

// orphanProfile is the profile of an orphanRun (${HOSTILE} to fill in).
const orphanProfile = hostileExecProfile + "limits: {pids: 64}\n"

// startOrphan starts the run standalone, as root.
func startOrphan(t *testing.T) *orphanRun {
	t.Helper()
	name := "e2e-leftovers"
	return startOrphanWith(t, jailSpec{profile: hostileProfileFile(t, name, orphanProfile), name: name})
}

// startOrphanWith starts the run as spec says; spec.name names its cgroups.
func startOrphanWith(t *testing.T, spec jailSpec) *orphanRun {
	t.Helper()
	name := spec.name
	marker := newMarker(t)
	cmd, auditLog := spec.command(t, withTimeout(t, 2*time.Minute), suite.hostile, "-marker", marker, "orphan")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	run := &orphanRun{cmd: cmd.Process, stdin: stdin, marker: marker, auditLog: auditLog}
	// Wait closes stdout unread: what the server prints after "ready" does
	// not matter, and a survivor holding the pipe must not hang the test.
	run.wait = func() (int, error) { return e2e.ExitCode(cmd.Wait()) }
	t.Cleanup(func() {
		cmd.Process.Kill()
		for _, p := range procsWithArg(marker) {
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		t.Fatalf("fixture did not start: %q, %v\nstderr:\n%s", line, err, stderr.String())
	}
	procs := waitForProcs(t, marker, suite.hostile, 2)
	var child int
	for _, p := range procs {
		switch p.cmdline[len(p.cmdline)-1] {
		case "orphan":
			run.server = p.pid
		case "idle":
			child = p.pid
		}
	}
	if run.server == 0 || child == 0 {
		t.Fatalf("want the orphan-mode server and its idle child, found %v", procStrings(procs))
	}
	run.cgroups = jailCgroupDirs(t, run.server, name)
	if childCgroups := jailCgroupDirs(t, child, name); fmt.Sprint(childCgroups) != fmt.Sprint(run.cgroups) {
		t.Fatalf("the orphaned child is in other cgroups (%v) than the server (%v)", childCgroups, run.cgroups)
	}
	return run
}

// assertNothingLeft fails unless every process carrying the run's marker,
// every cgroup directory and the private TMPDIR of the run are gone within
// deadline (0: right now).
func (r *orphanRun) assertNothingLeft(t *testing.T, deadline time.Duration) {
	t.Helper()
	if left := eventually(deadline, func() []string { return procStrings(procsWithArg(r.marker)) }); len(left) > 0 {
		t.Errorf("processes of the run survived mcpjail: %v", left)
	}
	if left := eventually(deadline, func() []string { return existing(r.cgroups) }); len(left) > 0 {
		t.Errorf("cgroups of the run were not removed: %v", left)
	}
	events := readEvents(t, r.auditLog)
	if len(events) == 0 {
		t.Errorf("no events in the audit log")
	}
	if left := eventually(deadline, func() []string { return tmpLeftovers(events) }); len(left) > 0 {
		t.Errorf("the run's private TMPDIR was not removed: %v", left)
	}
}

func TestNoLeftoversAfterServerExits(t *testing.T) {
	requireRoot(t)
	r := startOrphan(t)
	r.stdin.Close() // the server exits 0; its orphan is still running
	code, err := r.wait()
	if err != nil || code != 0 {
		t.Errorf("exit status %d (%v), want the server's 0", code, err)
	}
	r.assertNothingLeft(t, 0)
}

func TestNoLeftoversAfterServerIsKilled(t *testing.T) {
	requireRoot(t)
	r := startOrphan(t)
	if err := syscall.Kill(r.server, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	code, err := r.wait()
	if err != nil || code != 137 {
		t.Errorf("exit status %d (%v), want 137 (server SIGKILLed)", code, err)
	}
	r.assertNothingLeft(t, 0)
}

func TestNoLeftoversAfterMcpjailIsKilled(t *testing.T) {
	requireRoot(t)
	r := startOrphan(t)
	// What a crashing MCP client's process group kill does to mcpjail.
	if err := r.cmd.Kill(); err != nil {
		t.Fatal(err)
	}
	r.wait()
	r.assertNothingLeft(t, cleanupDeadline)
}

// startDaemonOrphan starts a daemon and the run through it, as uid 65534.
func startDaemonOrphan(t *testing.T) (*testDaemon, *orphanRun) {
	t.Helper()
	name := "e2e-leftovers"
	d := startDaemon(t, listenLoopback(t).port(), "", map[string]string{name: strings.ReplaceAll(orphanProfile, "${HOSTILE}", suite.hostile)})
	spec := d.nobody(name, nobodyDir(t))
	spec.name = name
	return d, startOrphanWith(t, spec)
}

// TestNoLeftoversAfterDaemonServerExits: when `mcpjail run` through the
// daemon returns, the jail is already stopped: the server's orphaned child
// is dead, the cgroups are gone, and so is the run's TMPDIR (the daemon
// answers the release only then; it detaches the programs afterwards).
func TestNoLeftoversAfterDaemonServerExits(t *testing.T) {
	requireRoot(t)
	_, r := startDaemonOrphan(t)
	r.stdin.Close() // the server exits 0; its orphan is still running
	code, err := r.wait()
	if err != nil || code != 0 {
		t.Errorf("exit status %d (%v), want the server's 0", code, err)
	}
	r.assertNothingLeft(t, 0)
}

// TestNoLeftoversAfterDaemonClientIsKilled: a run through the daemon has no
// cleanup guard of its own; when its mcpjail is SIGKILLed, the daemon sees
// the connection close and removes the jail and the run's private TMPDIR
// (which the client created, as the user).
func TestNoLeftoversAfterDaemonClientIsKilled(t *testing.T) {
	requireRoot(t)
	_, r := startDaemonOrphan(t)
	for _, g := range procsWithArg(guardArg) {
		if parentPID(g.pid) == r.cmd.Pid {
			t.Errorf("a run through the daemon started a cleanup guard: %v", g)
		}
	}
	if err := r.cmd.Kill(); err != nil {
		t.Fatal(err)
	}
	r.wait()
	r.assertNothingLeft(t, cleanupDeadline)
}

// TestNoLeftoversAfterDaemonAndClientAreKilled: the daemon is killed (-9),
// then the run's client, so that nothing watches the run. From the jail's
// record, a restarted daemon (which adopts the jail, finds it empty and
// releases it) or `mcpjail daemon --cleanup` removes the jail, its cgroup
// and the run's TMPDIR.
func TestNoLeftoversAfterDaemonAndClientAreKilled(t *testing.T) {
	requireRoot(t)
	for _, after := range []string{"restart", "cleanup"} {
		t.Run(after, func(t *testing.T) {
			d, r := startDaemonOrphan(t)
			d.kill9(t)
			if err := r.cmd.Kill(); err != nil {
				t.Fatal(err)
			}
			r.wait()
			if after == "restart" {
				d.start(t)
			} else if out, err := exec.Command(suite.mcpjail, "daemon", "--config", d.config, "--cleanup").CombinedOutput(); err != nil {
				t.Fatalf("daemon --cleanup: %v\n%s", err, out)
			}
			r.assertNothingLeft(t, cleanupDeadline)
		})
	}
}

// TestNoEBPFObjectsAfterTheRun: the eBPF layer of a standalone run does not
// outlive it. Detaching syscall tracepoints is slow (sandbox.startGuard), so
// the run hands its links to its cleanup guard and exits; the guard closes
// them after a while. So: when mcpjail's output has ended, the guard holds
// the run's programs (the run did not wait for the detach, and did not
// leave it to nobody), and once the guard is gone, none of the run's
// programs is left. (Programs held by live processes belong to other
// mcpjail instances on the machine, not to this finished run.)
func TestNoEBPFObjectsAfterTheRun(t *testing.T) {
	requireRoot(t)
	waitForNoGuard(t)
	before := mcpjailPrograms(t)
	first := ebpf.ProgramID(0)
	for id := range before {
		first = max(first, id)
	}
	profile := hostileProfileFile(t, "e2e-bpf-leftovers", hostileExecProfile)
	out := jailSpec{profile: profile, name: "e2e-bpf-leftovers"}.run(t, nil, suite.hostile, "exit", "0")
	if out.code != 0 {
		t.Fatalf("exit status %d\n%s", out.code, out.stderr)
	}
	guards := procsWithArg(guardArg)
	if len(guards) != 1 {
		t.Fatalf("%d cleanup guards alive when mcpjail's output ended, want the run's one: it waited for the guard, or the guard held nothing", len(guards))
	}
	heldByGuard := 0
	for id := range programsHeldBy(guards[0].pid) {
		if id > first {
			heldByGuard++
		}
	}
	if heldByGuard == 0 {
		t.Errorf("the run's guard (pid %d) holds none of the run's programs: the run detached them itself", guards[0].pid)
	}
	waitForNoGuard(t)
	held := programsHeldByProcesses()
	var left []string
	for id, name := range mcpjailPrograms(t) {
		if id > first && !held[id] {
			left = append(left, fmt.Sprintf("%s (id %d)", name, id))
		}
	}
	if len(left) > 0 {
		t.Errorf("eBPF programs of the run outlived it and its guard: %v", left)
	}
}

// guardArg is argv[1] of mcpjail's cleanup guard (sandbox/guard.go).
const guardArg = "__mcpjail_guard"

// waitForNoGuard waits until no cleanup guard runs: an earlier run's guard
// lingers a little after its run to detach its programs.
func waitForNoGuard(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(cleanupDeadline)
	for len(procsWithArg(guardArg)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("cleanup guards still running after %v: %v", cleanupDeadline, procsWithArg(guardArg))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mcpjailPrograms lists loaded programs whose names mcpjail gives them.
func mcpjailPrograms(t *testing.T) map[ebpf.ProgramID]string {
	t.Helper()
	out := map[ebpf.ProgramID]string{}
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return out // ENOENT: the end of the list
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded meanwhile
		}
		if info, err := p.Info(); err == nil && strings.HasPrefix(info.Name, "mcpjail_") {
			out[id] = info.Name
		}
		p.Close()
	}
}

// programsHeldByProcesses reads every process's fdinfo for prog_id lines.
func programsHeldByProcesses() map[ebpf.ProgramID]bool {
	return programsHeldIn("/proc/[0-9]*/fdinfo/*")
}

// programsHeldBy reads one process's fdinfo for prog_id lines (link
// descriptors name their program too).
func programsHeldBy(pid int) map[ebpf.ProgramID]bool {
	return programsHeldIn(fmt.Sprintf("/proc/%d/fdinfo/*", pid))
}

func programsHeldIn(pattern string) map[ebpf.ProgramID]bool {
	held := map[ebpf.ProgramID]bool{}
	infos, _ := filepath.Glob(pattern)
	for _, p := range infos {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "prog_id:"); ok {
				if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
					held[ebpf.ProgramID(n)] = true
				}
			}
		}
	}
	return held
}

// TestPID1KeepsOnlyCapKill: the jail's PID 1 only waits and relays signals,
// so of root's capabilities it keeps CAP_KILL alone, with no_new_privs.
func TestPID1KeepsOnlyCapKill(t *testing.T) {
	requireRoot(t)
	h := startHostile(t, t.TempDir(), hostileExecProfile)
	h.serverPID(t) // the server runs: PID 1 has dropped its capabilities
	start, ok := waitForEvent(t, h.auditLog, func(e audit.Event) bool { return e.Kind == audit.KindStart })
	if !ok || start.PID == 0 {
		t.Fatalf("no start event with PID 1's host pid:\n%s", formatEvents(readEvents(t, h.auditLog)))
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", start.PID))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"CapEff": "0000000000000020", "CapPrm": "0000000000000020", "CapInh": "0000000000000000", "CapAmb": "0000000000000000", "NoNewPrivs": "1"}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		if w, ok := want[k]; ok {
			if strings.TrimSpace(v) != w {
				t.Errorf("PID 1 %s = %s, want %s (CAP_KILL only)", k, strings.TrimSpace(v), w)
			}
			delete(want, k)
		}
	}
	if len(want) > 0 {
		t.Errorf("fields missing from /proc/%d/status: %v", start.PID, want)
	}
}
