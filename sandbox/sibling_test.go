package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckSibling(t *testing.T) {
	dir := t.TempDir()
	self := filepath.Join(dir, "mcpjail")
	if err := os.WriteFile(self, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	init := filepath.Join(dir, "mcpjail-init")
	write := func(mode os.FileMode) {
		t.Helper()
		os.Remove(init)
		if err := os.WriteFile(init, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(init, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	if _, err := checkSibling(self, init); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing: %v, want a refusal naming it", err)
	}
	for _, mode := range []os.FileMode{0o775, 0o757, 0o777, 0o755 | os.ModeSetuid, 0o755 | os.ModeSetgid} {
		write(mode)
		if _, err := checkSibling(self, init); err == nil {
			t.Errorf("mode %v: accepted", mode)
		}
	}
	if err := os.Remove(init); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(init, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := checkSibling(self, init); err == nil || !strings.Contains(err.Error(), "regular file") {
		t.Errorf("directory: %v, want a refusal", err)
	}
	os.Remove(init)
	for _, mode := range []os.FileMode{0o755, 0o700, 0o555} {
		write(mode)
		if got, err := checkSibling(self, init); err != nil || got != init {
			t.Errorf("mode %v: %q, %v; want it accepted", mode, got, err)
		}
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(init, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := checkSibling(self, init); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Errorf("another owner: %v, want a refusal", err)
		}
	}
}
