// Package e2e holds what mcpjail's end-to-end tests and its benchmark share:
// finding the repository, building binaries, installing the pinned reference
// MCP servers, and driving an MCP server over stdio with the official go-sdk
// client.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// modulePath identifies mcpjail's go.mod when walking up from a directory.
const modulePath = "module github.com/mcpjail/mcpjail"

// RepoRoot walks up from dir to the directory holding mcpjail's go.mod.
func RepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("repo root: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.Contains(b, []byte(modulePath+"\n")) {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("repo root: no go.mod of mcpjail above %s", dir)
		}
	}
}

// GoBuild builds the package pkg (relative to repo, "./cmd/mcpjail") into
// out, statically (CGO_ENABLED=0) so the binary needs no library reads in a
// jail, with mode 0755 whatever the umask.
func GoBuild(ctx context.Context, repo, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return os.Chmod(out, 0o755)
}

// BuildMcpjail builds mcpjail and, beside it, the init step mcpjail-init
// that it runs in every jail and mcpjail-daemon (`mcpjail daemon`), into
// dir; it returns mcpjail's path.
func BuildMcpjail(ctx context.Context, repo, dir string) (string, error) {
	for _, b := range []struct{ pkg, name string }{{"./cmd/mcpjail-init", "mcpjail-init"}, {"./cmd/mcpjail-daemon", "mcpjail-daemon"}, {"./cmd/mcpjail", "mcpjail"}} {
		if err := GoBuild(ctx, repo, b.pkg, filepath.Join(dir, b.name)); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, "mcpjail"), nil
}

// ServerNames are the pinned reference servers in tests/servers/package.json.
var ServerNames = []string{"filesystem", "memory", "everything"}

// InstallServers runs tests/servers/install.sh (npm ci of the pinned lock
// file; a no-op when already installed).
func InstallServers(ctx context.Context, repo string) error {
	if _, err := exec.LookPath("npm"); err != nil {
		return fmt.Errorf("install reference servers: npm not found: %w", err)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(repo, "tests", "servers", "install.sh"))
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("install reference servers: %w\n%s", err, b)
	}
	for _, name := range ServerNames {
		if _, err := os.Stat(ServerScript(ServersModules(repo), name)); err != nil {
			return fmt.Errorf("install reference servers: %w", err)
		}
	}
	return nil
}

// ServersModules is the node_modules directory install.sh fills.
func ServersModules(repo string) string {
	return filepath.Join(repo, "tests", "servers", "node_modules")
}

// ServerScript is the entry point of a reference server inside a
// node_modules directory, which tests start as `node SCRIPT ...` (no npx:
// see MCP-SERVERS.md).
func ServerScript(modules, name string) string {
	return filepath.Join(modules, "@modelcontextprotocol", "server-"+name, "dist", "index.js")
}

// CopyModules copies the installed node_modules into dir/node_modules and
// returns that path. The built-in node profiles read a server's package only
// from the global npm locations or from beneath --workdir, so a jailed
// reference server runs from a copy inside its workdir.
func CopyModules(ctx context.Context, repo, dir string) (string, error) {
	dst := filepath.Join(dir, "node_modules")
	cmd := exec.CommandContext(ctx, "cp", "-a", "--reflink=auto", ServersModules(repo), dst)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("copy node_modules to %s: %w\n%s", dir, err, b)
	}
	return dst, nil
}

// Connect starts cmd and opens an MCP client session over its stdio
// (initialize included). cmd must not have Stdin or Stdout set. Closing the
// session closes the server's stdin and waits for it, escalating to SIGTERM
// and SIGKILL after terminate each.
func Connect(ctx context.Context, cmd *exec.Cmd, terminate time.Duration) (*mcp.ClientSession, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpjail-e2e", Version: "v1.0.0"}, nil)
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd, TerminateDuration: terminate}, nil)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", strings.Join(cmd.Args, " "), err)
	}
	return cs, nil
}

// ExitCode is the exit status of a finished command: its code, or 128+N when
// signal N ended it (the shell's convention, which mcpjail also follows). An
// error that is not an exit status is returned as is.
func ExitCode(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return -1, err
	}
	return StateCode(ee.ProcessState), nil
}

// StateCode is ExitCode for a process state; -1 when there is none yet.
func StateCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
