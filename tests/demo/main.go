// Command demo shows mcpjail with a real MCP session: a go-sdk client drives
// @modelcontextprotocol/server-filesystem through `mcpjail run`, then a
// hostile fixture server tries to read a secret and write outside its
// directory, and the kernel refuses. Run it as root with `make demo`.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/tests/internal/e2e"
)

const step = 30 * time.Second // bound on each MCP call

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run the demo as root: the jail's cgroups and PID namespace need it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	repo, err := e2e.RepoRoot(".")
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "mcpjail-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "bin")
	os.Mkdir(bin, 0o755)
	hostile := filepath.Join(bin, "hostile")
	title("building mcpjail and the hostile fixture server")
	mcpjail, err := e2e.BuildMcpjail(ctx, repo, bin)
	if err != nil {
		return err
	}
	if err := e2e.GoBuild(ctx, repo, "./tests/fixtures/hostile", hostile); err != nil {
		return err
	}
	title("installing the pinned reference servers (npm ci)")
	if err := e2e.InstallServers(ctx, repo); err != nil {
		return err
	}
	if err := filesystemSession(ctx, repo, mcpjail, work); err != nil {
		return err
	}
	return hostileSession(ctx, mcpjail, hostile, work)
}

// filesystemSession runs the real filesystem server with its built-in profile.
func filesystemSession(ctx context.Context, repo, mcpjail, work string) error {
	dir := filepath.Join(work, "project")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "README.md"), []byte("# A project the server may read\n"), 0o644)
	// The built-in node profiles read a server's package beneath --workdir
	// (or from the global npm locations), so the demo runs a copy from there.
	modules, err := e2e.CopyModules(ctx, repo, dir)
	if err != nil {
		return err
	}
	log := filepath.Join(work, "filesystem-audit.jsonl")
	argv := []string{"run", "--profile", "filesystem", "--workdir", dir, "--audit-log", log, "--",
		"node", e2e.ServerScript(modules, "filesystem"), dir}
	title("mcpjail " + strings.Join(argv, " "))
	cmd := exec.Command(mcpjail, argv...)
	cmd.Stderr = os.Stderr
	cs, err := e2e.Connect(ctx, cmd, 5*time.Second)
	if err != nil {
		return err
	}
	for _, call := range []struct {
		tool string
		args map[string]any
	}{
		{"list_directory", map[string]any{"path": dir}},
		{"read_text_file", map[string]any{"path": filepath.Join(dir, "README.md")}},
	} {
		out, err := callText(ctx, cs, call.tool, call.args)
		if err != nil {
			cs.Close()
			return err
		}
		fmt.Printf("→ %s: %s\n", call.tool, indent(out))
	}
	cs.Close()
	return printEvents(log)
}

// hostileSession runs the fixture under a profile that reads a fake home
// but denies its .ssh, and writes one directory only.
func hostileSession(ctx context.Context, mcpjail, hostile, work string) error {
	home := filepath.Join(work, "home")
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	os.WriteFile(filepath.Join(home, ".ssh", "id_ed25519"), []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n"), 0o600)
	os.WriteFile(filepath.Join(home, "notes.txt"), []byte("notes\n"), 0o644)
	out := filepath.Join(work, "out")
	os.MkdirAll(out, 0o755)
	profile := filepath.Join(work, "hostile.yaml")
	os.WriteFile(profile, []byte(fmt.Sprintf(`apiVersion: mcpjail.dev/v1
kind: Profile
name: hostile-demo
description: reads a home directory except its .ssh, writes one directory
filesystem:
  read: [%s]
  write: [%s]
  exec: [%s]
  deny: [%s]
limits: {memory: 256Mi, pids: 32}
`, home, out, hostile, filepath.Join(home, ".ssh"))), 0o644)
	log := filepath.Join(work, "hostile-audit.jsonl")
	argv := []string{"run", "--profile", profile, "--workdir", out, "--audit-log", log, "--", hostile}
	title("mcpjail " + strings.Join(argv, " "))
	cmd := exec.Command(mcpjail, argv...)
	cmd.Stderr = os.Stderr
	cs, err := e2e.Connect(ctx, cmd, 5*time.Second)
	if err != nil {
		return err
	}
	defer cs.Close()
	for _, a := range []struct {
		tool string
		args map[string]any
	}{
		{"read_file", map[string]any{"path": filepath.Join(home, "notes.txt")}},
		{"read_file", map[string]any{"path": filepath.Join(home, ".ssh", "id_ed25519")}},
		{"write_file", map[string]any{"path": filepath.Join(out, "report.txt")}},
		{"write_file", map[string]any{"path": filepath.Join(home, ".bashrc")}},
		{"read_file", map[string]any{"path": "/etc/shadow"}},
	} {
		res, err := callText(ctx, cs, a.tool, a.args)
		if err != nil {
			return err
		}
		fmt.Printf("→ %s %v: %s\n", a.tool, a.args["path"], res)
	}
	cs.Close()
	return printEvents(log)
}

func callText(ctx context.Context, cs *mcp.ClientSession, tool string, args map[string]any) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, step)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return "", fmt.Errorf("call %s: %w", tool, err)
	}
	var b strings.Builder
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			b.WriteString(t.Text)
		}
	}
	return strings.TrimSpace(b.String()), nil
}

func printEvents(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read audit log: %w", err)
	}
	fmt.Println("audit log (" + filepath.Base(path) + "):")
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e audit.Event
		if json.Unmarshal([]byte(line), &e) == nil {
			fmt.Println("  " + line)
		}
	}
	return nil
}

func title(s string) { fmt.Printf("\n== %s\n", s) }

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n    ") }
