package tests

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// hostileJail is a running hostile fixture server under a test-written profile.
type hostileJail struct {
	*session
	workdir  string
	name     string
	marker   string
	auditLog string
}

// startHostile writes profile (YAML after the header; ${HOSTILE} stands for
// the fixture binary) and starts the fixture's MCP server under it.
func startHostile(t *testing.T, workdir, profile string) *hostileJail {
	t.Helper()
	name := "e2e-hostile"
	body := strings.ReplaceAll(profile, "${HOSTILE}", suite.hostile)
	path := writeProfile(t, t.TempDir(), name, body)
	marker := newMarker(t)
	spec := jailSpec{profile: path, workdir: workdir, name: name}
	cmd, auditLog := spec.command(t, withTimeout(t, 5*time.Minute), suite.hostile, "-marker", marker, "serve")
	return &hostileJail{session: connect(t, cmd), workdir: workdir, name: name, marker: marker, auditLog: auditLog}
}

// serverPID is the fixture's pid as this test sees it (outside any PID namespace).
func (h *hostileJail) serverPID(t *testing.T) int {
	t.Helper()
	return waitForProcs(t, h.marker, suite.hostile, 1)[0].pid
}

func newMarker(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "e2e-" + hex.EncodeToString(b)
}

// expectDenied asserts that an attempt failed with one of the errnos.
func expectDenied(t *testing.T, r hostileResult, errnos ...string) {
	t.Helper()
	t.Logf("denied? ok=%v errno=%s: %s", r.OK, r.Errno, r.Detail)
	if r.OK || !slices.Contains(errnos, r.Errno) {
		t.Errorf("got ok=%v errno=%q (%s), want the kernel to refuse with %s", r.OK, r.Errno, r.Detail, strings.Join(errnos, " or "))
	}
}

func expectAllowed(t *testing.T, r hostileResult) {
	t.Helper()
	t.Logf("allowed? ok=%v errno=%s: %.80s", r.OK, r.Errno, r.Detail)
	if !r.OK {
		t.Errorf("allowed action failed: errno=%q (%s)", r.Errno, r.Detail)
	}
}

// tcpListener accepts and counts connections (TCP on loopback, or UNIX).
type tcpListener struct {
	net.Listener
	accepted atomic.Int32
}

func listenLoopback(t *testing.T) *tcpListener {
	t.Helper()
	return listenCounting(t, "tcp", "127.0.0.1:0")
}

// listenCounting listens on addr and accepts, counts and closes
// connections until the test ends.
func listenCounting(t *testing.T, network, addr string) *tcpListener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	l := &tcpListener{Listener: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.accepted.Add(1)
			c.Close()
		}
	}()
	return l
}

func (l *tcpListener) port() int { return l.Addr().(*net.TCPAddr).Port }

// TestHostileFixtureIsStoppedByTheKernel runs one fixture server and makes it
// try, one at a time, what the jail must stop; each attempt must fail with the
// kernel's errno while the allowed control next to it works.
func TestHostileFixtureIsStoppedByTheKernel(t *testing.T) {
	requireRoot(t)
	w := t.TempDir()
	readable := filepath.Join(w, "readable")
	writable := filepath.Join(w, "writable")
	home := filepath.Join(w, "home")
	writeFile(t, readable, "file.txt", "readable content\n", 0o644)
	writeFile(t, writable, "mine.txt", "writable content\n", 0o644)
	writeFile(t, w, "outside.txt", "next to the allowed dirs\n", 0o644)
	writeFile(t, home, "notes.txt", "notes\n", 0o644)
	writeFile(t, home, ".sshrc", "not a key\n", 0o644)
	writeFile(t, home, ".ssh/id_ed25519", "PRIVATE KEY\n", 0o600)
	copyFile(t, suite.hostile, filepath.Join(readable, "hostile-copy"), 0o755)
	allowed, denied := listenLoopback(t), listenLoopback(t)

	h := startHostile(t, w, fmt.Sprintf(`
filesystem:
  read: ["${WORKDIR}/readable", "${WORKDIR}/home"]
  write: ["${WORKDIR}/writable"]
  exec: ["${HOSTILE}"]
  deny: ["${WORKDIR}/home/.ssh"]
network:
  egress:
    - cidr: 127.0.0.1/32
      ports: [%d]
limits: {memory: 256Mi, pids: 64, cpu: 0.5}
on_violation: deny
`, allowed.port()))

	t.Run("limits", func(t *testing.T) {
		pid := h.serverPID(t)
		mem := fmt.Sprint(256 << 20)
		assertCgroupLimit(t, pid, h.name, map[string]string{"memory.limit_in_bytes": mem, "memory.max": mem})
		assertCgroupLimit(t, pid, h.name, map[string]string{"pids.max": "64"})
		// Half a core: 50 ms per 100 ms period.
		assertCgroupLimit(t, pid, h.name, map[string]string{"cpu.cfs_quota_us": "50000", "cpu.max": "50000 100000"})
	})

	t.Run("identity", func(t *testing.T) {
		// As root without SUDO_UID and without server.user: root with no
		// capabilities at all, no_new_privs, a seccomp filter, its own PID
		// namespace.
		assertStatus(t, h.serverPID(t), map[string]string{
			"Uid": "0\t0\t0\t0", "NoNewPrivs": "1", "Seccomp": "2",
			"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
			"CapBnd": "0000000000000000", "CapAmb": "0000000000000000",
		})
		var self struct {
			PIDNS string `json:"pid_ns"`
		}
		if err := json.Unmarshal(h.attempt(t, "self", nil).Data, &self); err != nil {
			t.Fatal(err)
		}
		if mine, _ := os.Readlink("/proc/self/ns/pid"); self.PIDNS == "" || self.PIDNS == mine {
			t.Errorf("server's PID namespace %q, want a new one (not %q)", self.PIDNS, mine)
		}
	})
	t.Run("read outside read", func(t *testing.T) {
		expectDenied(t, h.attempt(t, "read_file", map[string]any{"path": "/etc/passwd"}), "EACCES")
		expectDenied(t, h.attempt(t, "read_file", map[string]any{"path": filepath.Join(w, "outside.txt")}), "EACCES")
		r := h.attempt(t, "read_file", map[string]any{"path": filepath.Join(readable, "file.txt")})
		expectAllowed(t, r)
		if r.Detail != "readable content\n" {
			t.Errorf("read %q, want the file's content", r.Detail)
		}
	})
	t.Run("read under deny inside an allowed parent", func(t *testing.T) {
		expectDenied(t, h.attempt(t, "read_file", map[string]any{"path": filepath.Join(home, ".ssh", "id_ed25519")}), "EACCES")
		expectAllowed(t, h.attempt(t, "read_file", map[string]any{"path": filepath.Join(home, "notes.txt")}))
		// A sibling sharing the denied name's prefix is not denied.
		expectAllowed(t, h.attempt(t, "read_file", map[string]any{"path": filepath.Join(home, ".sshrc")}))
	})
	t.Run("write outside write", func(t *testing.T) {
		expectDenied(t, h.attempt(t, "write_file", map[string]any{"path": filepath.Join(readable, "file.txt")}), "EACCES")
		expectDenied(t, h.attempt(t, "write_file", map[string]any{"path": filepath.Join(readable, "new.txt")}), "EACCES")
		expectDenied(t, h.attempt(t, "write_file", map[string]any{"path": filepath.Join(w, "new.txt")}), "EACCES")
		expectAllowed(t, h.attempt(t, "write_file", map[string]any{"path": filepath.Join(writable, "new.txt")}))
		assertFileContent(t, filepath.Join(readable, "file.txt"), "readable content\n")
		assertMissing(t, filepath.Join(readable, "new.txt"), filepath.Join(w, "new.txt"))
	})
	t.Run("no core files", func(t *testing.T) {
		// A crash would write the server's memory, its secrets included,
		// into its working directory.
		r := h.attempt(t, "core_limit", nil)
		expectDenied(t, r, "EPERM")
		if !strings.HasPrefix(r.Detail, "RLIMIT_CORE is 0/0:") {
			t.Errorf("core_limit: %s; want RLIMIT_CORE 0/0", r.Detail)
		}
	})
	t.Run("set-user-ID files", func(t *testing.T) {
		// The server runs as root: a set-user-ID file it left in a writable
		// directory would make anyone who can reach it root, outside the jail.
		setid := filepath.Join(writable, "setid")
		if err := os.MkdirAll(setid, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, how := range []string{"chmod", "fchmod", "create", "tmpfile", "mknod"} {
			for _, mode := range []int{0o4755, 0o2755} {
				expectDenied(t, h.attempt(t, "set_mode", map[string]any{"dir": setid, "how": how, "mode": mode}), "EPERM")
			}
			// The same call with plain permission bits passes: the refusal is
			// the set-ID bits', not the directory's.
			r := h.attempt(t, "set_mode", map[string]any{"dir": setid, "how": how, "mode": 0o755})
			expectAllowed(t, r)
			if !strings.HasSuffix(r.Detail, "has mode 755") {
				t.Errorf("%s with 0755: %s", how, r.Detail)
			}
			if err := os.Remove(filepath.Join(setid, "setid-"+how)); err != nil {
				t.Error(err)
			}
		}
		ev, ok := waitForEvent(t, h.auditLog, func(e audit.Event) bool {
			return e.Kind == audit.KindSyscall && e.Layer == audit.LayerSeccomp && e.Target == "mknodat"
		})
		if !ok || ev.Verdict != audit.VerdictDeny {
			t.Errorf("no seccomp deny event for mknodat: %+v", ev)
		}
	})
	t.Run("link and rename across rights", func(t *testing.T) {
		mine := filepath.Join(writable, "mine.txt")
		// Out of the writable dir into a readable one.
		expectDenied(t, h.attempt(t, "hard_link", map[string]any{"old": mine, "new": filepath.Join(readable, "link.txt")}), "EACCES", "EXDEV")
		expectDenied(t, h.attempt(t, "rename", map[string]any{"old": mine, "new": filepath.Join(readable, "moved.txt")}), "EACCES", "EXDEV")
		// A read-only file linked into the writable dir could then be written
		// through the link: Landlock's refer right must stop it.
		expectDenied(t, h.attempt(t, "hard_link", map[string]any{"old": filepath.Join(readable, "file.txt"), "new": filepath.Join(writable, "link.txt")}), "EACCES", "EXDEV")
		assertMissing(t, filepath.Join(readable, "link.txt"), filepath.Join(readable, "moved.txt"), filepath.Join(writable, "link.txt"))
		assertFileContent(t, mine, "writable content\n")
		// Inside the writable dir both work.
		expectAllowed(t, h.attempt(t, "hard_link", map[string]any{"old": mine, "new": filepath.Join(writable, "mine-link.txt")}))
		expectAllowed(t, h.attempt(t, "rename", map[string]any{"old": filepath.Join(writable, "mine-link.txt"), "new": filepath.Join(writable, "renamed.txt")}))
	})
	t.Run("exec outside exec", func(t *testing.T) {
		expectDenied(t, h.attempt(t, "exec", map[string]any{"path": "/usr/bin/true"}), "EACCES")
		// The same binary, allowed at one path and not at another.
		expectDenied(t, h.attempt(t, "exec", map[string]any{"path": filepath.Join(readable, "hostile-copy"), "args": []string{"exit", "0"}}), "EACCES")
		r := h.attempt(t, "exec", map[string]any{"path": suite.hostile, "args": []string{"exit", "7"}})
		expectAllowed(t, r)
		if !strings.Contains(string(r.Data), `"exit_code":7`) {
			t.Errorf("allowed exec: data %s, want exit_code 7", r.Data)
		}
	})
	t.Run("exec from a memfd", func(t *testing.T) {
		// A copy of an allowed program, run from a memfd: in no directory,
		// so in no filesystem.exec path. Landlock lets it through; the BPF
		// LSM refuses it (EPERM) where it is active, else the exec watch
		// kills the child before the copy runs (on_violation.exec is deny
		// here, so the server lives on).
		r := h.attempt(t, "exec_memfd", map[string]any{"path": suite.hostile, "args": []string{"exit", "7"}})
		want := "SIGKILL"
		if lsmActive() {
			want = "EPERM"
		}
		expectDenied(t, r, want)
		ev, ok := waitForEvent(t, h.auditLog, func(e audit.Event) bool {
			return e.Kind == audit.KindExec && e.Verdict == audit.VerdictDeny && strings.HasPrefix(e.Target, map[string]string{
				"SIGKILL": "/proc/self/fd/", "EPERM": "/memfd:payload"}[want])
		})
		if !ok {
			t.Fatalf("no deny event for the exec from a memfd in %s", h.auditLog)
		}
		if want == "SIGKILL" && (ev.Layer != audit.LayerBPF || !strings.Contains(ev.Reason, "internal mount (a memfd)")) {
			t.Errorf("event %+v: want the exec watch's refusal of an exec from a memfd", ev)
		}
		if want == "EPERM" && ev.Layer != audit.LayerBPFLSM {
			t.Errorf("event %+v: want the BPF LSM's refusal", ev)
		}
		expectAllowed(t, h.attempt(t, "self", nil)) // the server is still there
	})
	t.Run("tcp connect to a port not in egress", func(t *testing.T) {
		expectDenied(t, h.attempt(t, "tcp_connect", map[string]any{"addr": denied.Addr().String()}), "EACCES", "EPERM")
		// TCP Fast Open connects from sendto, around Landlock's connect rule.
		expectDenied(t, h.attempt(t, "tcp_fastopen", map[string]any{"addr": denied.Addr().String()}), "EPERM")
		// A listener on a port the kernel picks would send to whoever
		// connects; the profile lists no network.bind port.
		expectDenied(t, h.attempt(t, "tcp_listen", nil), "EPERM")
		expectAllowed(t, h.attempt(t, "tcp_connect", map[string]any{"addr": allowed.Addr().String()}))
		if n := denied.accepted.Load(); n != 0 {
			t.Errorf("the denied listener accepted %d connections", n)
		}
	})
	t.Run("kernel interfaces", func(t *testing.T) {
		for _, c := range []struct {
			name string
			args map[string]any
		}{
			{"bpf", map[string]any{"cmd": "map_create"}},
			{"bpf", map[string]any{"cmd": "prog_load"}},
			{"ptrace", nil}, // its own child: allowed to any unconfined process
			{"io_uring_setup", nil},
			{"tiocsti", nil}, // stdin is the MCP client's pipe: ENOTTY without the filter
		} {
			t.Run(c.name, func(t *testing.T) {
				expectDenied(t, h.attempt(t, c.name, c.args), "EPERM")
			})
		}
	})
	t.Run("signal outside the jail", func(t *testing.T) {
		testSignalOutside(t, h)
	})
	t.Run("escape the cgroup", func(t *testing.T) {
		pid := h.serverPID(t)
		before := jailCgroupDirs(t, pid, h.name)
		// The jail may hide /proc/self/cgroup from the server; name the
		// targets from outside: the parent of each of its cgroups. They are
		// root's and 0644, so for the capability-less root server only the
		// jail stands in the way.
		var targets []string
		for _, dir := range before {
			targets = append(targets, filepath.Join(filepath.Dir(dir), "cgroup.procs"))
		}
		r := h.attempt(t, "escape_cgroup", map[string]any{"procs": targets})
		expectDenied(t, r, "EACCES", "EPERM")
		var tried []struct{ Procs, Errno string }
		if err := json.Unmarshal(r.Data, &tried); err != nil || len(tried) != len(targets) {
			t.Fatalf("escape attempts %s, want one per target %v", r.Data, targets)
		}
		for _, a := range tried {
			if a.Errno != "EACCES" && a.Errno != "EPERM" {
				t.Errorf("write to %s: errno %q, want EACCES or EPERM", a.Procs, a.Errno)
			}
		}
		if after := jailCgroupDirs(t, pid, h.name); !slices.Equal(before, after) {
			t.Errorf("cgroups changed from %v to %v (attempt: %s)", before, after, r.Data)
		}
	})
	t.Run("fork bomb stops at pids", func(t *testing.T) {
		assertCgroupLimit(t, h.serverPID(t), h.name, map[string]string{"pids.max": "64"})
		r := h.attempt(t, "fork_bomb", map[string]any{"n": 1000})
		expectDenied(t, r, "EAGAIN")
		var data struct{ Spawned int }
		if err := json.Unmarshal(r.Data, &data); err != nil || data.Spawned >= 64 {
			t.Errorf("fork bomb spawned %s children, want fewer than the limit of 64", r.Data)
		}
		// The server survived and still answers.
		expectAllowed(t, h.attempt(t, "self", nil))
	})
	if code := h.close(t); code != 0 {
		t.Errorf("fixture exit status %d after the session, want 0\nstderr:\n%s", code, h.stderr.String())
	}
}

// testSignalOutside makes the fixture signal a process the test started
// outside the jail. Landlock's signal scope answers EPERM; inside its own PID
// namespace the fixture cannot even name the process (ESRCH). Either way the
// process must live on.
func testSignalOutside(t *testing.T, h *hostileJail) {
	victim := exec.Command("sleep", "300")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { victim.Wait(); close(exited) }()
	t.Cleanup(func() { victim.Process.Kill(); <-exited })

	r := h.attempt(t, "kill", map[string]any{"pid": victim.Process.Pid, "sig": 15})
	expectDenied(t, r, "EPERM", "ESRCH")
	if r.Errno == "ESRCH" {
		// Only acceptable when the fixture lives in another PID namespace.
		self := h.attempt(t, "self", nil)
		var info struct {
			PIDNS string `json:"pid_ns"`
		}
		_ = json.Unmarshal(self.Data, &info)
		mine, _ := os.Readlink("/proc/self/ns/pid")
		if info.PIDNS == "" || info.PIDNS == mine {
			t.Errorf("ESRCH for a live pid in the same PID namespace (%q): the pid was wrong, not the jail", info.PIDNS)
		}
	}
	select {
	case <-exited:
		t.Errorf("the process outside the jail died: %v", victim.ProcessState)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestMemoryBombIsOOMKilled checks that a server allocating past limits.memory
// is killed by the kernel and that mcpjail reports it.
func TestMemoryBombIsOOMKilled(t *testing.T) {
	requireRoot(t)
	h := startHostile(t, t.TempDir(), `
filesystem:
  exec: ["${HOSTILE}"]
limits: {memory: 64Mi, pids: 64}
`)
	mem := fmt.Sprint(64 << 20)
	assertCgroupLimit(t, h.serverPID(t), h.name, map[string]string{"memory.limit_in_bytes": mem, "memory.max": mem})

	ctx := withTimeout(t, 2*time.Minute)
	res, err := h.CallTool(ctx, &mcp.CallToolParams{Name: "mem_bomb", Arguments: map[string]any{"mb": 1024}})
	if err == nil {
		t.Fatalf("mem_bomb returned instead of the server being killed: %+v", res)
	}
	code := h.close(t)
	if code != 128+9 {
		t.Errorf("mcpjail exit status %d, want 137 (the server SIGKILLed by the OOM killer)\nstderr:\n%s", code, h.stderr.String())
	}
	events := readEvents(t, h.auditLog)
	reported := false
	for _, e := range events {
		r := strings.ToLower(e.Reason + " " + e.Target)
		if e.Kind == audit.KindLimit || (e.Kind == audit.KindExit && (strings.Contains(r, "oom") || strings.Contains(r, "memory"))) {
			reported = true
		}
	}
	t.Logf("events:\n%s", formatEvents(events))
	if !reported {
		t.Errorf("no limit event (or exit event naming the OOM kill) in the audit log:\n%s", formatEvents(events))
	}
}

// assertCgroupLimit finds one limit in the jail's cgroups under its v1 or v2
// file name (want maps each name to the expected content) and compares it.
func assertCgroupLimit(t *testing.T, pid int, name string, want map[string]string) {
	t.Helper()
	for _, dir := range jailCgroupDirs(t, pid, name) {
		for file, value := range want {
			b, err := os.ReadFile(filepath.Join(dir, file))
			if err != nil {
				continue
			}
			if got := strings.TrimSpace(string(b)); got != value {
				t.Errorf("%s/%s = %s, want %s", dir, file, got, value)
			}
			return
		}
	}
	t.Errorf("none of %v in the jail's cgroups: the limit was not applied", want)
}

func assertMissing(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s exists, want it never created", p)
		}
	}
}

func copyFile(t *testing.T, src, dst string, perm os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Dir(dst), filepath.Base(dst), string(b), perm)
}
