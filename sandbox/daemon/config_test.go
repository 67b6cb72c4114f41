package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfigIsStrict(t *testing.T) {
	for _, c := range []struct {
		name, yaml, wantErr string
	}{
		{"unknown key", "sockett: /run/x.sock\n", "field sockett not found"},
		{"relative socket", "socket: run/x.sock\n", "not a clean absolute path"},
		{"pins outside bpffs", "pin_dir: /tmp/pins\n", "not below /sys/fs/bpf"},
		{"tiny audit file", "audit_log_max_bytes: 10\n", "below 4096"},
		{"no rotation kept", "audit_log_keep: 0\n", "at least 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			err := ParseConfig([]byte(c.yaml), &cfg)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("ParseConfig(%q) = %v, want an error containing %q", c.yaml, err, c.wantErr)
			}
		})
	}
}

func TestParseConfigKeepsDefaultsForAnEmptyFile(t *testing.T) {
	cfg := DefaultConfig()
	if err := ParseConfig([]byte("# nothing set\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Socket != DefaultSocket || cfg.PinDir != DefaultPinDir || cfg.AllowUserProfiles {
		t.Fatalf("defaults changed: %+v", cfg)
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.yaml")
	if _, err := LoadConfig(missing, false); err != nil {
		t.Errorf("a missing default config should give the defaults, got %v", err)
	}
	if _, err := LoadConfig(missing, true); err == nil {
		t.Error("a missing config that was asked for should be an error")
	}
}

func TestDeclaredServersAreValidatedWhole(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "name: notes\ncommand: [/usr/bin/notes-server]\nprofile: filesystem\nuser: nobody\nrestart: {policy: always, backoff_initial: 2s}\n")
	servers, err := LoadDeclaredServers(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 1 || servers[0].Restart.BackoffInitial != 2*time.Second || servers[0].Restart.BackoffMax < 2*time.Second {
		t.Fatalf("unexpected servers: %+v", servers[0])
	}
	write("b.yaml", "name: notes\ncommand: [/usr/bin/x]\nprofile: p\nuser: nobody\n")
	if _, err := LoadDeclaredServers(dir); err == nil || !strings.Contains(err.Error(), "also declared") {
		t.Errorf("duplicate names: got %v", err)
	}
	write("b.yaml", "name: other\ncommand: [x]\nprofile: p\n")
	_, err = LoadDeclaredServers(dir)
	for _, want := range []string{"absolute path", "user: must be set"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("invalid server: got %v, want %q", err, want)
		}
	}
	write("b.yaml", "name: other\ncommand: [/x]\nprofile: p\nuser: u\nrestart: {policy: sometimes}\n")
	if _, err := LoadDeclaredServers(dir); err == nil || !strings.Contains(err.Error(), "restart.policy") {
		t.Errorf("bad restart policy: got %v", err)
	}
}
