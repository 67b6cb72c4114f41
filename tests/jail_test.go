package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
//
// Tests poll the log while mcpjail writes it, and a reader can see a write
// in part (the kernel copies it a page at a time, and a reader takes what
// is there): only newline-terminated lines count, and an unfinished last
// line is left for the next read. A complete line that does not decode is
// a failure.
func readEvents(t *testing.T, path string) []audit.Event {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("read audit log: %v", err)
	}
	complete := data[:bytes.LastIndexByte(data, '\n')+1]
	if rest := len(data) - len(complete); rest > 0 {
		t.Logf("audit log %s: its last line is not complete yet (%d bytes); left for a later read", path, rest)
	}
	var events []audit.Event
	for line := range bytes.Lines(complete) {
		var e audit.Event
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("audit log %s: bad line %q: %v", path, line, err)
		}
		events = append(events, e)
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

// TestReadEventsLeavesAnUnfinishedLine: a poll that lands in the middle of
// mcpjail's write of a line reads the complete lines and leaves the rest.
func TestReadEventsLeavesAnUnfinishedLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	var full []byte
	for _, kind := range []audit.Kind{audit.KindStart, audit.KindKill} {
		b, err := json.Marshal(audit.Event{Kind: kind, Verdict: audit.VerdictDeny})
		if err != nil {
			t.Fatal(err)
		}
		full = append(append(full, b...), '\n')
	}
	cut := bytes.IndexByte(full, '\n') + 1 + 10 // the first line and part of the second
	for _, tc := range []struct {
		data []byte
		want []audit.Kind
	}{
		{full[:cut], []audit.Kind{audit.KindStart}},
		{full, []audit.Kind{audit.KindStart, audit.KindKill}},
	} {
		if err := os.WriteFile(path, tc.data, 0o600); err != nil {
			t.Fatal(err)
		}
		var got []audit.Kind
		for _, e := range readEvents(t, path) {
			got = append(got, e.Kind)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%d bytes of the log: kinds %v, want %v", len(tc.data), got, tc.want)
		}
	}
}
