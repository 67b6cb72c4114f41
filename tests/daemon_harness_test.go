package tests

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpjail/mcpjail/sandbox/daemon/api"
)

// testDaemon is a real `mcpjail daemon` with a configuration of its own:
// its socket, state and audit log in temporary directories, and its pins
// in a bpffs directory no other test uses.
type testDaemon struct {
	dir      string // config, profiles, state, audit log
	config   string
	socket   string
	pinDir   string
	auditLog string
	metrics  string // host:port
	cmd      *exec.Cmd
	stderr   *syncBuffer
	env      []string // added to the daemon's environment
}

// daemonProfile is the profile the tests' unprivileged runs name: the
// fixture may run, read its workdir, connect to one loopback port, and has
// a memory limit. on_violation network is filled in.
const daemonProfile = `
filesystem:
  read: ["${WORKDIR}"]
  exec: ["%s"]
network:
  egress:
    - cidr: 127.0.0.1/32
      ports: [%d]
limits: {memory: 64Mi, pids: 64}
on_violation: {network: %s}
`

// startDaemon writes a configuration that lets uid 65534 in, and the two
// profiles "e2e-deny" and "e2e-kill" (and extraProfiles, by name), and
// starts the daemon.
func startDaemon(t *testing.T, allowedPort int, extraConfig string, extraProfiles map[string]string) *testDaemon {
	t.Helper()
	d := newDaemon(t, allowedPort, extraConfig, extraProfiles)
	d.start(t)
	return d
}

// newDaemon is startDaemon without the start.
func newDaemon(t *testing.T, allowedPort int, extraConfig string, extraProfiles map[string]string) *testDaemon {
	t.Helper()
	requireRoot(t)
	requireTool(t, setprivPath, "util-linux")
	dir := nobodyDir(t) // the socket's directory must be reachable by uid 65534
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	d := &testDaemon{
		dir:      dir,
		config:   filepath.Join(dir, "mcpjail.yaml"),
		socket:   filepath.Join(dir, "mcpjail.sock"),
		pinDir:   "/sys/fs/bpf/mcpjail-e2e-" + hex.EncodeToString(b),
		auditLog: filepath.Join(dir, "audit", "audit.jsonl"),
		metrics:  freeLoopbackAddr(t),
	}
	profiles := filepath.Join(dir, "profiles")
	if err := os.Mkdir(profiles, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"deny", "kill"} {
		writeProfile(t, profiles, "e2e-"+action, fmt.Sprintf(daemonProfile, suite.hostile, allowedPort, action))
	}
	for name, body := range extraProfiles {
		writeProfile(t, profiles, name, body)
	}
	cfg := fmt.Sprintf(`socket: %s
allow_users: ["65534"]
profile_dirs: [%s]
pin_dir: %s
state_dir: %s
audit_log: %s
metrics_address: %s
%s`, d.socket, profiles, d.pinDir, filepath.Join(dir, "state"), d.auditLog, d.metrics, extraConfig)
	writeFile(t, dir, "mcpjail.yaml", cfg, 0o600)
	t.Cleanup(func() { d.cleanup(t) })
	return d
}

// start runs the daemon and waits until its socket answers.
func (d *testDaemon) start(t *testing.T) {
	t.Helper()
	d.stderr = &syncBuffer{}
	d.cmd = exec.Command(suite.mcpjail, "daemon", "--config", d.config, "--debug")
	d.cmd.Env = append(os.Environ(), d.env...)
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := d.status(); err == nil {
			return
		}
		if d.cmd.ProcessState != nil || time.Now().After(deadline) {
			t.Fatalf("daemon did not become ready\nstderr:\n%s", d.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill9 kills the daemon the hard way and waits for it.
func (d *testDaemon) kill9(t *testing.T) {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	_ = d.cmd.Wait()
}

// hup asks the daemon to reload, as systemctl reload would.
func (d *testDaemon) hup(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP the daemon: %v", err)
	}
}

// stop ends the daemon with SIGTERM, as systemd would.
func (d *testDaemon) stop(t *testing.T) {
	t.Helper()
	if d.cmd == nil || d.cmd.ProcessState != nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
		t.Errorf("daemon did not stop on SIGTERM\nstderr:\n%s", d.stderr.String())
	}
}

// cleanup stops the daemon and removes what it pinned, as --cleanup does.
func (d *testDaemon) cleanup(t *testing.T) {
	d.stop(t)
	out, err := exec.Command(suite.mcpjail, "daemon", "--config", d.config, "--cleanup").CombinedOutput()
	if err != nil {
		t.Errorf("daemon --cleanup: %v\n%s", err, out)
	}
	if _, err := os.Stat(d.pinDir); !os.IsNotExist(err) {
		t.Errorf("pin directory %s still exists after --cleanup (%v)", d.pinDir, err)
	}
	if t.Failed() {
		t.Logf("daemon stderr:\n%s", d.stderr.String())
	}
}

// status runs `mcpjail status --json` against the daemon.
func (d *testDaemon) status() (*api.Status, error) {
	out, err := exec.Command(suite.mcpjail, "status", "--json", "--socket", d.socket).Output()
	if err != nil {
		return nil, err
	}
	var st api.Status
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("decode status: %w\n%s", err, out)
	}
	return &st, nil
}

// nobody is a run of the fixture through the daemon, as uid 65534.
func (d *testDaemon) nobody(profile, workdir string) jailSpec {
	return jailSpec{profile: profile, workdir: workdir, asNobody: true, env: defaultClientEnv(),
		extra: []string{"--socket", d.socket}}
}

// events runs `mcpjail events --json` and returns its lines.
func (d *testDaemon) events(t *testing.T) string {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(suite.mcpjail, "events", "--json", "--socket", d.socket)
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("mcpjail events: %v", err)
	}
	return out.String()
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func hasLine(out string, match func(string) bool) bool {
	for _, l := range strings.Split(out, "\n") {
		if match(l) {
			return true
		}
	}
	return false
}
