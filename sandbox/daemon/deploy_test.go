package daemon_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox/daemon"
)

// repoRoot is the repository, seen from this package's directory (where go
// test runs): these tests check the files make install ships.
const repoRoot = "../.."

// The examples under deploy/etc are what `make install` puts in
// /etc/mcpjail: they must load with the daemon's own strict parsers.
func TestDeployExamplesLoad(t *testing.T) {
	etc := filepath.Join(repoRoot, "deploy", "etc")
	data, err := os.ReadFile(filepath.Join(etc, "mcpjail.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := daemon.DefaultConfig()
	if err := daemon.ParseConfig(data, &cfg); err != nil {
		t.Fatalf("deploy/etc/mcpjail.yaml: %v", err)
	}
	if cfg.AllowUserProfiles {
		t.Errorf("the example config lets users bring their own profiles; it must not by default")
	}

	// Only *.yaml is read from servers.d: enable the example in a copy.
	example, err := os.ReadFile(filepath.Join(etc, "servers.d", "example.yaml.disabled"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "example.yaml"), example, 0o600); err != nil {
		t.Fatal(err)
	}
	servers, err := daemon.LoadDeclaredServers(dir)
	if err != nil {
		t.Fatalf("servers.d/example.yaml.disabled: %v", err)
	}
	if len(servers) != 1 {
		t.Fatalf("the servers.d example declares %d servers, want 1", len(servers))
	}
	if _, err := profiles.Builtin(servers[0].Profile); err != nil {
		t.Errorf("the servers.d example names profile %q: %v", servers[0].Profile, err)
	}

	profileFile := filepath.Join(etc, "profiles", "example-memory.yaml")
	p, err := profiles.LoadFile(profileFile)
	if err != nil {
		t.Fatalf("%s: %v", profileFile, err)
	}
	if want := strings.TrimSuffix(filepath.Base(profileFile), ".yaml"); p.Name() != want {
		t.Errorf("%s is named %q; a run names it by its file name %q", profileFile, p.Name(), want)
	}
}

// The unit and the example config must agree on where things live: the
// socket in the unit's RuntimeDirectory, the audit log in its
// LogsDirectory, the config where ExecStart reads it.
func TestUnitMatchesConfig(t *testing.T) {
	unit := unitSettings(t, filepath.Join(repoRoot, "deploy", "systemd", "mcpjail.service"))
	data, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "etc", "mcpjail.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := daemon.DefaultConfig()
	if err := daemon.ParseConfig(data, &cfg); err != nil {
		t.Fatal(err)
	}
	checks := []struct{ what, got, want string }{
		{"socket directory", filepath.Dir(cfg.Socket), "/run/" + unit["RuntimeDirectory"]},
		{"state directory", filepath.Dir(cfg.StateDir), "/run/" + unit["RuntimeDirectory"]},
		{"audit log directory", filepath.Dir(cfg.AuditLog), "/var/log/" + unit["LogsDirectory"]},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: config says %s, unit provides %s", c.what, c.got, c.want)
		}
	}
	if !strings.Contains(unit["ExecStart"], "--config "+daemon.DefaultConfigPath) {
		t.Errorf("ExecStart=%s does not read %s", unit["ExecStart"], daemon.DefaultConfigPath)
	}
	if !strings.Contains(unit["ReadWritePaths"], "/sys/fs/bpf") || !strings.HasPrefix(cfg.PinDir, "/sys/fs/bpf/") {
		t.Errorf("pin_dir %s is not writable under the unit's ReadWritePaths=%s", cfg.PinDir, unit["ReadWritePaths"])
	}
}

// unitSettings reads KEY=VALUE lines of a unit file (the last one wins).
func unitSettings(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
