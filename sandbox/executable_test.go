package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

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

func TestResolvePin(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	exe := filepath.Join(dir, "server-1.2")
	os.WriteFile(exe, []byte("binary"), 0o755)
	os.Symlink(exe, filepath.Join(bin, "server"))
	sum := sha256.Sum256([]byte("binary"))

	got, gotSum, err := ResolvePin("server", bin, dir)
	if err != nil || got != exe || gotSum != hex.EncodeToString(sum[:]) {
		t.Fatalf("ResolvePin = %q %q %v; want %q %x", got, gotSum, err, exe, sum)
	}
	// What pin writes is what run accepts.
	if _, err := checkIntegrity(filepath.Join(bin, "server"), profiles.Server{Executable: got, SHA256: gotSum}); err != nil {
		t.Errorf("run refuses the pin: %v", err)
	}
	var e *Error
	if _, _, err := ResolvePin("missing", bin, dir); !errors.As(err, &e) || e.Code != ExitNotFound {
		t.Errorf("missing command: err = %v, want code %d", err, ExitNotFound)
	}
	// An executable FIFO passes the mode check; hashing must refuse it at
	// once rather than wait for a writer.
	fifo := filepath.Join(bin, "fifo")
	if err := unix.Mkfifo(fifo, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ResolvePin("fifo", bin, dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("FIFO: err = %v, want a refusal", err)
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
