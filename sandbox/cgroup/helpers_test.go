package cgroup

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Environment variables that turn the test binary into a helper process.
const (
	envHog    = "MCPJAIL_CGROUP_TEST_HOG"    // allocate memory until OOM-killed
	envRemove = "MCPJAIL_CGROUP_TEST_REMOVE" // FromSpec(JSON).Remove, like the cleanup guard
)

// hangBound only protects the suite from hanging when the kernel does not do
// what a test expects; no test asserts how long anything takes.
const hangBound = 60 * time.Second

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(envHog) != "":
		memoryHog()
	case os.Getenv(envRemove) != "":
		os.Exit(guardRemove(os.Getenv(envRemove)))
	}
	os.Exit(m.Run())
}

// memoryHog waits for a line on stdin (the test places it in the jail first),
// then touches 1 MiB chunks until the kernel kills it. It gives up at 1 GiB so
// that a missing memory limit fails the test instead of the machine.
func memoryHog() {
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	var keep [][]byte
	for range 1024 {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		keep = append(keep, b)
	}
	fmt.Println(len(keep), "MiB allocated, never killed")
	os.Exit(0)
}

// guardRemove is what the launcher's cleanup guard does, in another process.
func guardRemove(specJSON string) int {
	var s Spec
	if err := json.Unmarshal([]byte(specJSON), &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	if err := FromSpec(s).Remove(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// skipOrFail skips outside CI and fails under CI=true, where every
// prerequisite must be present.
func skipOrFail(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true and " + reason)
	}
	t.Skip(reason)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "the test needs root to create cgroups")
	}
}

// requireCgroups returns the machine's mode, or skips/fails without cgroups.
func requireCgroups(t *testing.T) Mode {
	t.Helper()
	requireRoot(t)
	m := DetectMode()
	if m == ModeNone {
		skipOrFail(t, "no cgroup filesystem is mounted")
	}
	return m
}

func testName(t *testing.T) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("test-%d-%s", os.Getpid(), hex.EncodeToString(b))
}

// newGroup creates a jail and removes it when the test ends. Limits the host
// cannot apply skip the test outside CI (a shell in a systemd session cannot
// enable v2 controllers) and fail it under CI.
func newGroup(t *testing.T, limits Limits) *Group {
	t.Helper()
	requireCgroups(t)
	g, missing, err := Create(testName(t), limits)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { removeOrFail(t, g) })
	if len(missing) > 0 {
		skipOrFail(t, fmt.Sprintf("this host cannot apply the limits: %s", strings.Join(missing, "; ")))
	}
	return g
}

func removeOrFail(t *testing.T, g *Group) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	if err := g.Remove(ctx); err != nil {
		t.Errorf("Remove: %v", err)
	}
	for _, p := range g.Paths() {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind after Remove (stat: %v)", p, err)
		}
	}
}

// gated is a process that waits for a line on stdin before doing its work,
// so that the test can put it in the jail before it forks or allocates.
type gated struct {
	cmd  *exec.Cmd
	gate io.WriteCloser
	done chan struct{} // closed once the process is reaped
}

func startGated(t *testing.T, attr *syscall.SysProcAttr, name string, args ...string) *gated {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = attr
	return startGatedCmd(t, cmd)
}

func startGatedCmd(t *testing.T, cmd *exec.Cmd) *gated {
	t.Helper()
	cmd.Stderr = os.Stderr
	gate, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	p := &gated{cmd: cmd, gate: gate, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the status is read from cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// startShell runs script under sh once released by open.
func startShell(t *testing.T, script string) *gated {
	return startGated(t, nil, "sh", "-c", "read go; "+script)
}

func (p *gated) open(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(p.gate, "go\n"); err != nil {
		t.Fatalf("release gated process: %v", err)
	}
}

// wait returns the process's wait status.
func (p *gated) wait(t *testing.T) syscall.WaitStatus {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(hangBound):
		t.Fatalf("pid %d did not exit", p.cmd.Process.Pid)
	}
	return p.cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// waitProcs waits until the jail holds at least n processes.
func waitProcs(t *testing.T, g *Group, n int) []int {
	t.Helper()
	deadline := time.Now().Add(hangBound)
	for {
		pids, err := g.Procs()
		if err != nil {
			t.Fatalf("Procs: %v", err)
		}
		if len(pids) >= n {
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("jail holds %v, want at least %d processes", pids, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// ownCgroups parses /proc/<pid>/cgroup into controller → path ("" for v2),
// independently of the code under test.
func ownCgroups(t *testing.T, pid string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(readTrim(t, filepath.Join("/proc", pid, "cgroup")), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			t.Fatalf("bad /proc/%s/cgroup line %q", pid, line)
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out
}
