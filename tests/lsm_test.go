package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/features"
	"github.com/mcpjail/mcpjail/sandbox/features/confinement"
)

// The BPF-LSM deny layer (bpf/lsm.bpf.c) runs where the kernel runs BPF LSM
// programs: Debian's 6.1 in tests/vm, not this project's hosts. It runs after
// Landlock in the LSM order (lsm=landlock,...,bpf), so a file Landlock
// refuses (EACCES) never reaches it. What shows the layer at work is what
// Landlock lets through: a bind mount of a denied directory or file under an
// allowed one, however the path to it is spelled. There the LSM refuses with
// EPERM and reports the resolved path; without it, those opens succeed (a
// known Landlock limit, sandbox/confine/walkdown.go), which the tests assert
// too, so that each kernel's behaviour is pinned down.

// lsmActive says doctor's probes found every BPF-LSM hook usable.
func lsmActive() bool {
	for _, name := range features.LSMProbes() {
		if p, ok := suite.kernel.BPFProbe(name); !ok || !p.OK {
			return false
		}
	}
	return true
}

// bindMount binds src onto dst (which must exist) for the test's duration.
func bindMount(t *testing.T, src, dst string) {
	t.Helper()
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s on %s: %v", src, dst, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dst, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dst, err)
		}
	})
}

func lsmEvent(events []audit.Event, kind audit.Kind, path string) bool {
	return findEvent(events, func(e audit.Event) bool {
		return e.Kind == kind && e.Layer == audit.LayerBPFLSM && e.Verdict == audit.VerdictDeny && e.Target == path
	})
}

// TestLSMRefusesDeniedFileThroughBinds: a denied directory bound under a
// readable one, reached directly, through a symlink, a ".." path and
// /proc/self/root, and a bind of the denied file itself. With the BPF LSM
// each open fails with EPERM and is reported with the path the kernel
// resolved; a process outside the jail reads the same file meanwhile.
func TestLSMRefusesDeniedFileThroughBinds(t *testing.T) {
	requireRoot(t)
	w := t.TempDir()
	key := writeFile(t, w, "secret/key", "PRIVATE KEY\n", 0o600)
	writeFile(t, w, "public/readme", "hello\n", 0o644)
	mirror := filepath.Join(w, "public", "mirror")
	if err := os.Mkdir(mirror, 0o755); err != nil {
		t.Fatal(err)
	}
	bindMount(t, filepath.Join(w, "secret"), mirror)
	keyCopy := writeFile(t, w, "public/key-copy", "", 0o644)
	bindMount(t, key, keyCopy)
	if err := os.Symlink(filepath.Join(mirror, "key"), filepath.Join(w, "public", "link")); err != nil {
		t.Fatal(err)
	}
	h := startHostile(t, w, `
filesystem:
  read: ["${WORKDIR}/public"]
  exec: ["${HOSTILE}"]
  deny: ["${WORKDIR}/secret"]
on_violation: {file: deny}
`)
	// Outside any bind, Landlock refuses first on every kernel.
	expectDenied(t, h.attempt(t, "read_file", map[string]any{"path": key}), "EACCES")
	expectAllowed(t, h.attempt(t, "read_file", map[string]any{"path": filepath.Join(w, "public", "readme")}))

	resolved := filepath.Join(mirror, "key")
	spellings := map[string]string{
		resolved:                           resolved,
		filepath.Join(w, "public", "link"): resolved,
		mirror + "/../mirror/key":          resolved,
		"/proc/self/root" + resolved:       resolved,
		keyCopy:                            keyCopy,
	}
	active := lsmActive()
	for path := range spellings {
		r := h.attempt(t, "read_file", map[string]any{"path": path})
		if active {
			expectDenied(t, r, "EPERM")
		} else {
			// Without the LSM a bind exposes the denied file: Landlock follows
			// the path used. This is the gap the layer closes.
			expectAllowed(t, r)
		}
	}
	// The LSM hook is for jailed tasks only: this test process is not one.
	if b, err := os.ReadFile(resolved); err != nil || !strings.Contains(string(b), "PRIVATE KEY") {
		t.Errorf("an unjailed read of %s while the jail runs: %q, %v", resolved, b, err)
	}
	if code := h.close(t); code != 0 {
		t.Errorf("exit status %d\nstderr:\n%s", code, h.stderr.String())
	}
	events := readEvents(t, h.auditLog)
	for path, want := range spellings {
		if got := lsmEvent(events, audit.KindOpen, want); got != active {
			t.Errorf("opening %s: a bpf-lsm open event for %s: %v, want %v (layer active: %v)\n%s", path, want, got, active, active, formatEvents(events))
		}
	}
}

// TestLSMRefusesExecThroughABind: a binary under filesystem.deny, bound into
// an exec directory, is refused with EPERM by the LSM's bprm_check_security
// (Landlock allows it: the path it walks is allowed), and the event carries
// the resolved path.
func TestLSMRefusesExecThroughABind(t *testing.T) {
	requireRoot(t)
	w := t.TempDir()
	bin, err := os.ReadFile(suite.hostile)
	if err != nil {
		t.Fatal(err)
	}
	tool := writeFile(t, w, "secret/tool", string(bin), 0o755)
	mirror := filepath.Join(w, "bin", "mirror")
	if err := os.MkdirAll(mirror, 0o755); err != nil {
		t.Fatal(err)
	}
	bindMount(t, filepath.Join(w, "secret"), mirror)
	h := startHostile(t, w, `
filesystem:
  exec: ["${HOSTILE}", "${WORKDIR}/bin"]
  deny: ["${WORKDIR}/secret"]
on_violation: {exec: deny}
`)
	expectDenied(t, h.attempt(t, "exec", map[string]any{"path": tool, "args": []string{"exit", "0"}}), "EACCES")
	bound := filepath.Join(mirror, "tool")
	r := h.attempt(t, "exec", map[string]any{"path": bound, "args": []string{"exit", "0"}})
	active := lsmActive()
	if active {
		expectDenied(t, r, "EPERM") // not Landlock's EACCES
	} else {
		expectAllowed(t, r)
	}
	if code := h.close(t); code != 0 {
		t.Errorf("exit status %d\nstderr:\n%s", code, h.stderr.String())
	}
	events := readEvents(t, h.auditLog)
	if got := lsmEvent(events, audit.KindExec, bound); got != active {
		t.Errorf("a bpf-lsm exec event for %s: %v, want %v\n%s", bound, got, active, formatEvents(events))
	}
	// Reported once, by the hook: the exit tracepoint sees the same EPERM.
	if findEvent(events, func(e audit.Event) bool {
		return e.Kind == audit.KindExec && e.Verdict == audit.VerdictDeny && e.Layer != audit.LayerBPFLSM && strings.HasSuffix(e.Target, "/tool") && strings.Contains(e.Reason, "EPERM")
	}) {
		t.Errorf("the LSM's refusal was reported twice:\n%s", formatEvents(events))
	}
}

// TestLSMRefusesConnect: a connect outside network.egress is refused on
// every kernel, by the first layer in the kernel's order: Landlock's TCP
// rules (ABI 4, EACCES) where it has them, they and the BPF LSM being LSM
// hooks of security_socket_connect; else the BPF LSM's socket_connect
// (EPERM), which runs before the cgroup connect hooks; else the cgroup hook
// (EPERM).
func TestLSMRefusesConnect(t *testing.T) {
	requireRoot(t)
	allowed, denied := listenLoopback(t), listenLoopback(t)
	h := startHostile(t, t.TempDir(), networkProfile(allowed.port(), "deny"))
	expectAllowed(t, h.attempt(t, "tcp_connect", map[string]any{"addr": allowed.Addr().String()}))
	want, errno := audit.LayerBPF, "EPERM"
	switch {
	case suite.kernel.Landlock.Status == confinement.LandlockEnabled && suite.kernel.Landlock.UsableABI >= 4:
		want, errno = audit.LayerLandlock, "EACCES"
	case lsmActive():
		want = audit.LayerBPFLSM
	}
	expectDenied(t, h.attempt(t, "tcp_connect", map[string]any{"addr": denied.Addr().String()}), errno)
	if code := h.close(t); code != 0 {
		t.Errorf("exit status %d\nstderr:\n%s", code, h.stderr.String())
	}
	if n := denied.accepted.Load(); n != 0 {
		t.Errorf("the denied listener accepted %d connections", n)
	}
	events := readEvents(t, h.auditLog)
	target := denied.Addr().String() + "/tcp"
	if !findEvent(events, func(e audit.Event) bool {
		return e.Kind == audit.KindConnect && e.Target == target && e.Verdict == audit.VerdictDeny && e.Layer == want
	}) {
		t.Errorf("no connect deny event for %s from layer %s:\n%s", target, want, formatEvents(events))
	}
}

// TestRequiredLSMIsNeverDegraded: a profile with require: [bpf-lsm] runs
// where the layer is active and is refused (125) elsewhere, even with
// --allow-degraded.
func TestRequiredLSMIsNeverDegraded(t *testing.T) {
	requireRoot(t)
	profile := hostileProfileFile(t, "e2e-require-lsm", `
require: [bpf-lsm]
filesystem:
  exec: ["${HOSTILE}"]
`)
	out := jailSpec{profile: profile, allowDegraded: true}.run(t, nil, suite.hostile, "exit", "0")
	if lsmActive() {
		if out.code != 0 {
			t.Errorf("exit status %d where the layer is active\nstderr:\n%s", out.code, out.stderr)
		}
		return
	}
	if out.code != 125 || !strings.Contains(out.stderr, "requires the bpf-lsm layer") {
		t.Errorf("exit status %d, want 125 naming the required layer\nstderr:\n%s", out.code, out.stderr)
	}
	if !findEvent(out.events, func(e audit.Event) bool {
		return e.Kind == audit.KindRefuse && strings.Contains(e.Reason, "bpf-lsm")
	}) {
		t.Errorf("no refuse event naming bpf-lsm:\n%s", formatEvents(out.events))
	}
}

// TestLSMKillsOnDeniedFileThroughABind: with file: kill, an open of a denied
// file through a bind is refused by the LSM hook, which kills, and the whole
// server ends (137) with a bpf-lsm event that says so. Without the LSM the
// read succeeds (Landlock follows the path used) and nothing is killed.
func TestLSMKillsOnDeniedFileThroughABind(t *testing.T) {
	requireRoot(t)
	w := t.TempDir()
	writeFile(t, w, "secret/key", "PRIVATE KEY\n", 0o600)
	mirror := filepath.Join(w, "public", "mirror")
	if err := os.MkdirAll(mirror, 0o755); err != nil {
		t.Fatal(err)
	}
	bindMount(t, filepath.Join(w, "secret"), mirror)
	h := startHostile(t, w, `
filesystem:
  read: ["${WORKDIR}/public"]
  exec: ["${HOSTILE}"]
  deny: ["${WORKDIR}/secret"]
on_violation: {file: kill}
`)
	through := filepath.Join(mirror, "key")
	if !lsmActive() {
		expectAllowed(t, h.attempt(t, "read_file", map[string]any{"path": through}))
		if code := h.close(t); code != 0 {
			t.Errorf("exit status %d without the LSM, want 0\nstderr:\n%s", code, h.stderr.String())
		}
		return
	}
	callAndWaitForDeath(t, h, "read_file", map[string]any{"path": through})
	events := readEvents(t, h.auditLog)
	if !findEvent(events, func(e audit.Event) bool {
		return e.Kind == audit.KindOpen && e.Layer == audit.LayerBPFLSM && e.Target == through && e.Action == audit.ActionKill
	}) {
		t.Errorf("no bpf-lsm open event with action kill for %s:\n%s", through, formatEvents(events))
	}
}
