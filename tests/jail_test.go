package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/tests/internal/e2e"
)

// jailSpec is one `mcpjail run` invocation.
type jailSpec struct {
	profile       string // --profile (name or file); empty: mcpjail's default
	workdir       string // --workdir; empty: none
	name          string // --name; empty: none
	allowDegraded bool
	// strict keeps mcpjail's default on a kernel that lacks layers (see
	// suite.gaps): refuse. Otherwise such a kernel gets --allow-degraded.
	strict bool
	// asNobody runs mcpjail as uid/gid 65534 through setpriv, the way an
	// unprivileged user would start it.
	asNobody bool
	// env is mcpjail's whole environment; nil means a small client-like one.
	env []string
	// extra are more flags of `mcpjail run` (e.g. --socket of a test daemon).
	extra []string
	// noUserNS runs mcpjail where it can create no user namespace, as on a
	// host that forbids unprivileged ones: inside a user namespace of the
	// test's own (uids 0 and 65534 mapped to themselves) whose
	// max_user_namespaces is 0.
	noUserNS bool
}

// defaultClientEnv is what an MCP client typically hands a server command
// (the TypeScript SDK passes HOME LOGNAME PATH SHELL TERM USER).
func defaultClientEnv() []string {
	return []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + os.Getenv("HOME"),
		"LOGNAME=root", "USER=root", "SHELL=/bin/sh", "TERM=dumb",
	}
}

// command builds the exec.Cmd of `mcpjail run FLAGS -- argv...` and returns
// it with the path of its JSON audit log (created by mcpjail on first event).
func (s jailSpec) command(t *testing.T, ctx context.Context, argv ...string) (*exec.Cmd, string) {
	t.Helper()
	logDir := t.TempDir()
	if s.asNobody {
		logDir = nobodyDir(t)
	}
	auditLog := filepath.Join(logDir, "audit.jsonl")
	args := []string{"run", "--audit-log", auditLog}
	if s.profile != "" {
		args = append(args, "--profile", s.profile)
	}
	if s.workdir != "" {
		args = append(args, "--workdir", s.workdir)
	}
	if s.name != "" {
		args = append(args, "--name", s.name)
	}
	if s.allowDegraded || (!s.strict && len(suite.gaps) > 0) {
		args = append(args, "--allow-degraded")
	}
	args = append(args, s.extra...)
	args = append(append(args, "--"), argv...)
	path := suite.mcpjail
	if s.asNobody {
		args = append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", suite.mcpjail}, args...)
		path = setprivPath
	}
	if s.noUserNS {
		args = append([]string{"-c", `echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"`, "sh", path}, args...)
		path = "/bin/sh"
	}
	cmd := exec.CommandContext(ctx, path, args...)
	if s.noUserNS {
		ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}, {ContainerID: 65534, HostID: 65534, Size: 1}}
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: ids, GidMappings: ids, GidMappingsEnableSetgroups: true}
	}
	cmd.Env = s.env
	if cmd.Env == nil {
		cmd.Env = defaultClientEnv()
	}
	// On a test timeout, kill mcpjail the way a client would (SIGKILL after
	// its context ends) and do not wait forever for its pipes.
	cmd.WaitDelay = 10 * time.Second
	return cmd, auditLog
}

const setprivPath = "/usr/bin/setpriv"

// outcome is a finished `mcpjail run`.
type outcome struct {
	code   int
	stdout string
	stderr string
	events []audit.Event
}

// run runs mcpjail to completion with stdin as the server's input.
func (s jailSpec) run(t *testing.T, stdin io.Reader, argv ...string) outcome {
	t.Helper()
	ctx := withTimeout(t, 2*time.Minute)
	cmd, auditLog := s.command(t, ctx, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	code, err := e2e.ExitCode(cmd.Run())
	if err != nil {
		t.Fatalf("run mcpjail %v: %v\nstderr:\n%s", cmd.Args, err, stderr.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("mcpjail %v did not finish in time\nstderr:\n%s", cmd.Args, stderr.String())
	}
	out := outcome{code: code, stdout: stdout.String(), stderr: stderr.String(), events: readEvents(t, auditLog)}
	if left := tmpLeftovers(out.events); len(left) > 0 {
		t.Errorf("mcpjail returned but left its private TMPDIR behind: %v", left)
	}
	return out
}

// tmpLeftovers lists what remains in /tmp of the runs the events name:
// mcpjail creates each run's ${TMPDIR} there, named after the instance id,
// and must remove it whatever way the run ends.
func tmpLeftovers(events []audit.Event) []string {
	var left []string
	seen := map[string]bool{}
	for _, e := range events {
		id := e.Server.Instance
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		matches, _ := filepath.Glob(filepath.Join("/tmp", "*"+id+"*"))
		left = append(left, matches...)
	}
	return left
}

// readEvents decodes a JSON-lines audit log; a missing file is no events.
func readEvents(t *testing.T, path string) []audit.Event {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("open audit log: %v", err)
	}
	defer f.Close()
	var events []audit.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		var e audit.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit log %s: bad line %q: %v", path, sc.Text(), err)
		}
		events = append(events, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read audit log: %v", err)
	}
	return events
}

// eventsOf returns the events of one kind.
func eventsOf(events []audit.Event, kind audit.Kind) []audit.Event {
	var out []audit.Event
	for _, e := range events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// formatEvents renders events for a failure message.
func formatEvents(events []audit.Event) string {
	var b strings.Builder
	for _, e := range events {
		j, _ := json.Marshal(e)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// nobodyDir is a fresh directory owned by uid/gid 65534 inside the suite's
// world-traversable binary dir.
func nobodyDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp(suite.binDir, "nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	return dir
}
