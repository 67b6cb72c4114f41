package tests

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpjail/mcpjail/tests/internal/e2e"
)

// hostileExecProfile lets the fixture run its plain (non-MCP) modes.
const hostileExecProfile = `
filesystem:
  exec: ["${HOSTILE}"]
`

// hostileProfileFile writes body (with ${HOSTILE} filled in) as a profile.
func hostileProfileFile(t *testing.T, name, body string) string {
	t.Helper()
	return writeProfile(t, t.TempDir(), name, strings.ReplaceAll(body, "${HOSTILE}", suite.hostile))
}

// TestStdioIsByteExact pushes 10 MiB of random bytes through `mcpjail run --
// cat`: stdin and stdout are the server's own, so nothing may be lost,
// reordered, buffered away or added.
func TestStdioIsByteExact(t *testing.T) {
	requireRoot(t)
	in := make([]byte, 10<<20)
	if _, err := rand.Read(in); err != nil {
		t.Fatal(err)
	}
	out := jailSpec{}.run(t, bytes.NewReader(in), "cat")
	if out.code != 0 {
		t.Fatalf("exit status %d\nstderr:\n%s", out.code, out.stderr)
	}
	if len(out.stdout) != len(in) || sha256.Sum256([]byte(out.stdout)) != sha256.Sum256(in) {
		t.Fatalf("got %d bytes back (sha256 %x), sent %d (sha256 %x)", len(out.stdout), sha256.Sum256([]byte(out.stdout)), len(in), sha256.Sum256(in))
	}
	for _, line := range strings.Split(strings.TrimSpace(out.stderr), "\n") {
		if line != "" && !strings.HasPrefix(line, "mcpjail: ") {
			t.Errorf("stderr line without the mcpjail: prefix from a silent server: %q", line)
		}
	}
}

// TestExitStatusPropagates checks mcpjail's exit status: the server's own,
// 128+N for a signal, 126/127 for what cannot run.
func TestExitStatusPropagates(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	notExec := writeFile(t, dir, "not-executable", "#!/bin/sh\nexit 0\n", 0o644)
	hostile := hostileProfileFile(t, "e2e-exit", hostileExecProfile)
	for _, c := range []struct {
		name    string
		profile string
		argv    []string
		want    int
	}{
		{"sh exit 0", "", []string{"sh", "-c", "exit 0"}, 0},
		{"sh exit 1", "", []string{"sh", "-c", "exit 1"}, 1},
		{"sh exit 42", "", []string{"sh", "-c", "exit 42"}, 42},
		{"sh killed by SIGTERM", "", []string{"sh", "-c", "kill -TERM $$; sleep 5"}, 143},
		{"fixture exit 42", hostile, []string{suite.hostile, "exit", "42"}, 42},
		{"fixture killed by SIGTERM", hostile, []string{suite.hostile, "kill-self", "15"}, 143},
		{"fixture killed by SIGKILL", hostile, []string{suite.hostile, "kill-self", "9"}, 137},
		{"not found", "", []string{filepath.Join(dir, "no-such-command")}, 127},
		{"not executable", "", []string{notExec}, 126},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := jailSpec{profile: c.profile, workdir: dir}.run(t, nil, c.argv...)
			if out.code != c.want {
				t.Errorf("exit status %d, want %d\nstderr:\n%s", out.code, c.want, out.stderr)
			}
		})
	}
}

// TestSigtermReachesServer sends SIGTERM to mcpjail, as an MCP client does
// on shutdown, and checks the server got it: a server that handles TERM exits
// cleanly (status 0), one that does not dies of it (status 143).
func TestSigtermReachesServer(t *testing.T) {
	requireRoot(t)
	t.Run("server handles TERM", func(t *testing.T) {
		profile := hostileProfileFile(t, "e2e-trap", hostileExecProfile)
		code, stdout, stderr := runAndSignal(t, jailSpec{profile: profile}, "ready", suite.hostile, "trap-term")
		if code != 0 || !strings.Contains(stdout, "got SIGTERM") {
			t.Errorf("exit status %d, stdout %q: want 0 and the server's \"got SIGTERM\"\nstderr:\n%s", code, stdout, stderr)
		}
	})
	t.Run("server without a handler", func(t *testing.T) {
		// sh prints ready, then waits on a sleep child; sh itself has no TERM trap.
		code, stdout, stderr := runAndSignal(t, jailSpec{}, "ready", "sh", "-c", "echo ready; sleep 300 & wait")
		if code != 143 {
			t.Errorf("exit status %d, want 143 (SIGTERM)\nstdout %q\nstderr:\n%s", code, stdout, stderr)
		}
	})
}

// runAndSignal starts mcpjail, waits for the server to print ready, sends
// SIGTERM to mcpjail (not to the server) and returns how the run ended.
func runAndSignal(t *testing.T, spec jailSpec, ready string, argv ...string) (int, string, string) {
	t.Helper()
	ctx := withTimeout(t, time.Minute)
	cmd, _ := spec.command(t, ctx, argv...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	// A plain pipe, not cmd.StdoutPipe: reading to EOF must not race Wait,
	// and EOF proves that no process of the run still holds stdout.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd.Stdout = pw
	err = cmd.Start()
	pw.Close()
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	rest := make(chan string, 1)
	go func() {
		r := bufio.NewReader(pr)
		first, _ := r.ReadString('\n')
		lines <- first
		b, _ := io.ReadAll(r)
		rest <- first + string(b)
	}()
	select {
	case first := <-lines:
		if !strings.HasPrefix(first, ready) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("server did not print %q: got %q\nstderr:\n%s", ready, first, stderr.String())
		}
	case <-ctx.Done():
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("server never printed %q\nstderr:\n%s", ready, stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := e2e.ExitCode(cmd.Wait())
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("mcpjail did not exit after SIGTERM\nstderr:\n%s", stderr.String())
	}
	select {
	case out := <-rest:
		return code, out, stderr.String()
	case <-time.After(10 * time.Second):
		t.Fatalf("mcpjail exited (%d) but its stdout is still open: a process of the run survived\nstderr:\n%s", code, stderr.String())
	}
	return 0, "", ""
}

// TestOnlyStdioReachesTheServer: a descriptor mcpjail inherited without
// close-on-exec (an MCP client or a shell leaking an open file) must not
// reach the server, which could read through it what its profile forbids:
// Landlock checks a path when it is opened, and this file was opened
// outside. The same attempt bare reads the file, so the fixture can.
func TestOnlyStdioReachesTheServer(t *testing.T) {
	requireRoot(t)
	secret := writeFile(t, t.TempDir(), "secret.txt", "SECRET OUTSIDE THE PROFILE\n", 0o600)
	profile := hostileProfileFile(t, "e2e-fds", hostileExecProfile)
	for _, jailed := range []bool{false, true} {
		f, err := os.Open(secret)
		if err != nil {
			t.Fatal(err)
		}
		// fd 7, as a shell's 7<file leaks it; mcpjail's own pipes to its init
		// step take 3 to 5, which would hide a leak of those.
		argv := []string{suite.hostile, "attempt", "read_fd", "7"}
		var cmd *exec.Cmd
		if jailed {
			cmd, _ = jailSpec{profile: profile}.command(t, withTimeout(t, time.Minute), argv...)
		} else {
			cmd = exec.CommandContext(withTimeout(t, time.Minute), argv[0], argv[1:]...)
		}
		cmd.ExtraFiles = []*os.File{3: nil, 4: f} // fd 7, without close-on-exec
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err = cmd.Run()
		f.Close()
		if err != nil {
			t.Fatalf("jailed=%v: %v\nstderr:\n%s", jailed, err, stderr.String())
		}
		r := decodeAttempt(t, stdout.String())
		switch {
		case !jailed && (!r.OK || !strings.Contains(r.Detail, "SECRET")):
			t.Fatalf("bare read of fd 7: ok=%v errno=%q: the control does not read the file", r.OK, r.Errno)
		case jailed && (r.OK || r.Errno != "EBADF"):
			t.Errorf("jailed read of fd 7: ok=%v errno=%q (%.40s), want EBADF: the inherited descriptor reached the server", r.OK, r.Errno, r.Detail)
		}
	}
}
