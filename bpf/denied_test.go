package bpf

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/profiles"
)

func TestDeniedByProfile(t *testing.T) {
	p := &profiles.Policy{Filesystem: profiles.Filesystem{Deny: []string{"/home/u/.ssh", "/etc/shadow"}}}
	tests := []struct {
		name, dir, path string
		want            bool
	}{
		{"absolute under deny", "/", "/home/u/.ssh/id_ed25519", true},
		{"the denied file itself", "/", "/etc/shadow", true},
		{"the denied directory itself", "/tmp", "/home/u/.ssh", true},
		{"trailing slash", "/", "/home/u/.ssh/", true},
		{"dot-dot into deny", "/", "/home/u/work/../.ssh/config", true},
		{"relative from inside", "/home/u/.ssh", "id_rsa", true},
		{"relative through parent", "/home/u/work", "../.ssh/known_hosts", true},
		{"dot-dot out of deny", "/", "/home/u/.ssh/../notes", false},
		{"sibling with a common prefix", "/", "/home/u/.sshrc", false},
		{"prefix of the denied file", "/", "/etc/shadow-", false},
		{"elsewhere", "/", "/usr/lib/x", false},
		{"relative elsewhere", "/home/u/work", "file", false},
		{"relative with no directory: fail closed", "", "id_rsa", true},
		{"relative with a relative directory: fail closed", "home", "id_rsa", true},
		{"duplicate slashes", "/", "//home//u/.ssh//x", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := DeniedByProfile(p, tc.dir, tc.path); got != tc.want {
				t.Errorf("DeniedByProfile(%q, %q) = %v, want %v", tc.dir, tc.path, got, tc.want)
			}
		})
	}
	if DeniedByProfile(&profiles.Policy{}, "", "x") || DeniedByProfile(nil, "/", "/etc/shadow") {
		t.Error("a policy without deny paths denies")
	}
	if !DeniedByProfile(&profiles.Policy{Filesystem: profiles.Filesystem{Deny: []string{"/"}}}, "/", "/x") {
		t.Error("deny / does not cover /x")
	}
}

func FuzzDeniedByProfile(f *testing.F) {
	f.Add("/home/u", "../.ssh/x")
	f.Add("", "/etc/shadow")
	p := &profiles.Policy{Filesystem: profiles.Filesystem{Deny: []string{"/home/u/.ssh"}}}
	f.Fuzz(func(t *testing.T, dir, path string) {
		got := DeniedByProfile(p, dir, path)
		// An absolute path's answer never depends on dir.
		if len(path) > 0 && path[0] == '/' && got != DeniedByProfile(p, "/elsewhere", path) {
			t.Fatalf("absolute %q: answer depends on dir", path)
		}
	})
}

func TestOpenDir(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := OpenDir(os.Getpid(), unix.AT_FDCWD); err != nil || got != wd {
		t.Errorf("OpenDir(cwd) = %q, %v; want %q", got, err, wd)
	}
	d, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got, err := OpenDir(os.Getpid(), int(d.Fd())); err != nil || got != d.Name() {
		t.Errorf("OpenDir(fd) = %q, %v; want %q", got, err, d.Name())
	}
	if _, err := OpenDir(os.Getpid(), -5); err == nil {
		t.Error("OpenDir with a negative fd succeeded")
	}
}
