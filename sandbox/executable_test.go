package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpjail/mcpjail/profiles"
)

func TestResolveExecutable(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "tool")
	noexec := filepath.Join(dir, "data")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(noexec, []byte("x"), 0o644)
	for _, tc := range []struct {
		argv0, path string
		want        string
		code        int
	}{
		{"tool", dir, exe, 0},
		{"./tool", "", exe, 0},
		{exe, "", exe, 0},
		{"data", dir, "", ExitCannotExec},
		{"missing", dir, "", ExitNotFound},
		{"./missing", "", "", ExitNotFound},
		{"tool", "relative/dir", "", ExitNotFound},
	} {
		got, err := resolveExecutable(tc.argv0, tc.path, dir)
		if tc.code == 0 {
			if err != nil || got != tc.want {
				t.Errorf("%s: got %q, %v; want %q", tc.argv0, got, err, tc.want)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Code != tc.code {
			t.Errorf("%s: err = %v, want code %d", tc.argv0, err, tc.code)
		}
	}
}

func TestCheckIntegrity(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "server")
	os.WriteFile(exe, []byte("binary"), 0o755)
	link := filepath.Join(dir, "alias")
	os.Symlink(exe, link)
	sum := sha256.Sum256([]byte("binary"))
	good := hex.EncodeToString(sum[:])

	if real, err := checkIntegrity(link, profiles.Server{Executable: exe, SHA256: good}); err != nil || real != exe {
		t.Fatalf("good pin refused: %q %v", real, err)
	}
	_, err := checkIntegrity(link, profiles.Server{Executable: "/usr/bin/other"})
	if err == nil || !strings.Contains(err.Error(), "pins server.executable /usr/bin/other") {
		t.Fatalf("executable mismatch: %v", err)
	}
	bad := strings.Repeat("0", 64)
	_, err = checkIntegrity(exe, profiles.Server{SHA256: bad})
	if err == nil || !strings.Contains(err.Error(), good) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("sha256 mismatch not reported with both digests: %v", err)
	}
}

func TestStatusCodeAndDescribe(t *testing.T) {
	if got := describeExit(143); got != "server ended by signal terminated" {
		t.Errorf("describeExit(143) = %q", got)
	}
	if got := describeExit(42); got != "server exited with code 42" {
		t.Errorf("describeExit(42) = %q", got)
	}
}

func TestSafeName(t *testing.T) {
	if got := safeName("a/b c..d"); got != "a_b_c..d" {
		t.Errorf("safeName = %q", got)
	}
	if got := safeName(strings.Repeat("x", 100)); len(got) != 64 {
		t.Errorf("safeName length %d", len(got))
	}
}
