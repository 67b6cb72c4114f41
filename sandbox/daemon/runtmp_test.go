package daemon

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestRemoveAsUsesTheUsersRights: the daemon removes a run's TMPDIR with
// the user's file system rights. A directory inside it that the user cannot
// write (root's, mode 0700) stays, and says so; root's rights would have
// removed it.
func TestRemoveAsUsesTheUsersRights(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and the test needs root (setfsuid, chown)")
		}
		t.Skip("the test needs root (setfsuid, chown)")
	}
	const user = 65534
	// The parent is like /tmp: anyone may create, only owners remove (and
	// not in t.TempDir, whose own parent is root's 0700).
	parent, err := os.MkdirTemp("", "mcpjail-runtmp-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "run-tmp")
	mkdirOwned(t, dir, user)
	writeOwned(t, filepath.Join(dir, "scratch"), user)
	rootOnly := filepath.Join(dir, "root-only")
	mkdirOwned(t, rootOnly, 0)
	writeOwned(t, filepath.Join(rootOnly, "file"), 0)

	err = removeAs(dir, user, user)
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("removing a TMPDIR holding a root-only directory as uid %d: %v, want a permission error", user, err)
	}
	if _, err := os.Stat(filepath.Join(rootOnly, "file")); err != nil {
		t.Fatalf("the root-only file is gone (%v): the removal used root's rights", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "scratch")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the user's own file is still there (%v)", err)
	}

	if err := os.RemoveAll(rootOnly); err != nil {
		t.Fatal(err)
	}
	if err := removeAs(dir, user, user); err != nil {
		t.Fatalf("remove the user's TMPDIR: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the TMPDIR is still there (%v)", err)
	}
	if err := removeAs(dir, user, user); err != nil {
		t.Errorf("removing a TMPDIR that is already gone: %v, want nil", err)
	}
}

func mkdirOwned(t *testing.T, dir string, uid int) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
}

func writeOwned(t *testing.T, path string, uid int) {
	t.Helper()
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// TestIsRunTmp: only the shape `mcpjail run` makes, for this instance, in
// /tmp, is removed for a client.
func TestIsRunTmp(t *testing.T) {
	const instance = "0123456789ab"
	for dir, want := range map[string]bool{
		"/tmp/mcpjail-default-0123456789ab-1234567":      true,
		"/tmp/mcpjail-a.b_c-0123456789ab-9":              true,
		"/tmp/mcpjail-default-ba9876543210-1234567":      false, // another instance
		"/tmp/mcpjail-default-0123456789ab-":             false, // no random part
		"/tmp/x/mcpjail-default-0123456789ab-1234567":    false, // not in /tmp
		"/home/u/mcpjail-default-0123456789ab-1234567":   false,
		"/tmp/project-0123456789ab-1":                    false, // not mcpjail's
		"/tmp":                                           false,
		"/tmp/mcpjail-default-0123456789ab-1234567/..":   false,
		"/var/tmp/mcpjail-default-0123456789ab-12345678": false,
	} {
		if got := isRunTmp(dir, instance); got != want {
			t.Errorf("isRunTmp(%q) = %v, want %v", dir, got, want)
		}
	}
}
