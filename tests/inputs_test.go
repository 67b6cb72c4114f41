package tests

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mcpjail/mcpjail/tests/internal/e2e"
)

// TestWorkdirRootIsRefused: MCP clients often start servers from /, which
// makes the default --workdir /; the built-in filesystem profile grants
// ${WORKDIR} for writing, which would then be the whole filesystem. The run
// is refused before anything starts, naming --workdir.
func TestWorkdirRootIsRefused(t *testing.T) {
	requireRoot(t)
	cmd := exec.CommandContext(withTimeout(t, time.Minute), suite.mcpjail, "run", "--profile", "filesystem", "--", "/bin/true")
	cmd.Dir = "/"
	cmd.Env = defaultClientEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	code, err := e2e.ExitCode(cmd.Run())
	if err != nil {
		t.Fatal(err)
	}
	if code != 2 || !strings.Contains(stderr.String(), "expands to /, the whole filesystem") || !strings.Contains(stderr.String(), "--workdir") {
		t.Errorf("exit %d, want 2 (usage) naming the whole filesystem and --workdir\nstderr:\n%s", code, stderr.String())
	}
	if strings.Contains(stderr.String(), " start ") {
		t.Errorf("a refused run started something:\n%s", stderr.String())
	}
}

// TestServerNameIsChecked: --name ends up in events, status and cgroup
// names; one with control characters (terminal escape sequences) is
// refused, as a profile's name would be.
func TestServerNameIsChecked(t *testing.T) {
	requireRoot(t)
	out := jailSpec{name: "x\x1b]0;title\x07"}.run(t, nil, "/bin/true")
	if out.code != 2 || !strings.Contains(out.stderr, "--name") || strings.Contains(out.stderr, "\x1b") {
		t.Errorf("exit %d, want 2 naming --name, with nothing raw echoed\nstderr: %q", out.code, out.stderr)
	}
}
