package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcpjail/mcpjail/sandbox/features"
	"github.com/mcpjail/mcpjail/tests/internal/e2e"
)

// suite is what TestMain prepares once for every test: the binaries under
// test, built into a world-readable directory so that uid 65534 can run them
// in the fail-closed tests.
var suite struct {
	repo    string
	binDir  string // 0755, holds mcpjail and hostile
	mcpjail string
	hostile string
	// serversErr says why the reference MCP servers are unavailable.
	serversErr error
	// kernel is what this kernel offers (the probes of `mcpjail doctor`);
	// gaps are the layers mcpjail reports missing here for any profile
	// (kernel_test.go). With gaps, jailed runs pass --allow-degraded.
	kernel features.Report
	gaps   []string
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := prepareSuite(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		return 1
	}
	defer os.RemoveAll(suite.binDir)
	return m.Run()
}

// Prebuilt binaries: the kernel-VM stage (tests/vm) runs this suite where
// there is neither a Go toolchain nor a source tree, from static binaries
// that it built on the host. Both must be set, or neither.
const (
	envPrebuiltMcpjail = "MCPJAIL_BIN"
	envPrebuiltHostile = "MCPJAIL_HOSTILE"
)

func prepareSuite(ctx context.Context) error {
	// Not t.TempDir: its parents are 0700, which uid 65534 cannot traverse.
	dir, err := os.MkdirTemp("", "mcpjail-e2e-")
	if err != nil {
		return fmt.Errorf("binary dir: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("binary dir: %w", err)
	}
	suite.binDir = dir
	prebuiltMcpjail, prebuiltHostile := os.Getenv(envPrebuiltMcpjail), os.Getenv(envPrebuiltHostile)
	if prebuiltMcpjail != "" || prebuiltHostile != "" {
		err = usePrebuilt(prebuiltMcpjail, prebuiltHostile)
	} else {
		err = buildSuite(ctx, dir)
	}
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	probeKernel(ctx)
	return nil
}

// buildSuite builds the binaries from this source tree into dir and installs
// the reference servers.
func buildSuite(ctx context.Context, dir string) error {
	repo, err := e2e.RepoRoot(".")
	if err != nil {
		return err
	}
	suite.repo = repo
	suite.hostile = filepath.Join(dir, "hostile")
	if suite.mcpjail, err = e2e.BuildMcpjail(ctx, repo, dir); err != nil {
		return err
	}
	if err := e2e.GoBuild(ctx, repo, "./tests/fixtures/hostile", suite.hostile); err != nil {
		return err
	}
	suite.serversErr = e2e.InstallServers(ctx, repo)
	return nil
}

// usePrebuilt takes the binaries from the environment. They must be absolute
// paths that uid 65534 can execute, like the ones buildSuite makes, with
// mcpjail-init and mcpjail-daemon beside mcpjail.
func usePrebuilt(mcpjail, hostile string) error {
	beside := func(name string) string { return filepath.Join(filepath.Dir(mcpjail), name) }
	for env, path := range map[string]string{envPrebuiltMcpjail: mcpjail, envPrebuiltHostile: hostile,
		envPrebuiltMcpjail + "'s mcpjail-init": beside("mcpjail-init"), envPrebuiltMcpjail + "'s mcpjail-daemon": beside("mcpjail-daemon")} {
		if !filepath.IsAbs(path) {
			return fmt.Errorf("%s=%q: want the absolute path of a prebuilt binary (set both %s and %s, or neither)",
				env, path, envPrebuiltMcpjail, envPrebuiltHostile)
		}
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("%s: %w", env, err)
		}
		if fi.Mode().Perm()&0o005 != 0o005 {
			return fmt.Errorf("%s: %s has mode %s: uid 65534 must be able to run it", env, path, fi.Mode().Perm())
		}
	}
	suite.mcpjail, suite.hostile = mcpjail, hostile
	suite.serversErr = fmt.Errorf("prebuilt binaries (%s): no source tree to install the reference servers from", envPrebuiltMcpjail)
	return nil
}

// inCI reports whether missing prerequisites are failures (CI=true) rather
// than reasons to skip.
func inCI() bool { return os.Getenv("CI") == "true" }

// prerequisite skips the test when ok is false, or fails it under CI=true:
// in CI an environment that cannot run a test is a broken environment.
func prerequisite(t *testing.T, ok bool, format string, a ...any) {
	t.Helper()
	if ok {
		return
	}
	msg := "prerequisite missing: " + fmt.Sprintf(format, a...)
	if inCI() {
		t.Fatal(msg + " (CI=true: failing instead of skipping)")
	}
	t.Skip(msg)
}

func requireRoot(t *testing.T) {
	t.Helper()
	prerequisite(t, os.Geteuid() == 0, "must run as root (the jail creates cgroups and a PID namespace)")
}

func requireNode(t *testing.T) {
	t.Helper()
	_, err := exec.LookPath("node")
	prerequisite(t, err == nil, "node not in PATH (apt-get install nodejs)")
}

func requireServers(t *testing.T) {
	t.Helper()
	requireNode(t)
	prerequisite(t, suite.serversErr == nil, "reference MCP servers: %v", suite.serversErr)
}

func requireTool(t *testing.T, path, pkg string) {
	t.Helper()
	_, err := os.Stat(path)
	prerequisite(t, err == nil, "%s not found (apt-get install %s)", path, pkg)
}

// writeFile writes content into dir/name (creating parents) and returns the path.
func writeFile(t *testing.T, dir, name, content string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	// WriteFile's perm is masked by the umask; tests depend on exact modes.
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeProfile writes a profile file named after the test and returns its
// path. body is the YAML after the apiVersion/kind/name header.
func writeProfile(t *testing.T, dir, name, body string) string {
	t.Helper()
	header := fmt.Sprintf("apiVersion: mcpjail.dev/v1\nkind: Profile\nname: %s\n", name)
	return writeFile(t, dir, name+".yaml", header+body, 0o644)
}

// withTimeout is a context for one step of a test; no e2e step may hang.
func withTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
