package sandbox

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/mcpjail/mcpjail/sandbox/initstep"
)

// initBinary is the init step's executable: mcpjail-init beside this
// mcpjail. It runs inside every jail before the server, as root for a
// standalone root run, so it must be trusted exactly as mcpjail is.
func initBinary() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own executable: %w", err)
	}
	return checkInitBinary(self, filepath.Join(filepath.Dir(self), initstep.BinaryName))
}

// checkInitBinary refuses an init binary that anyone could have replaced
// who could not replace mcpjail (at self): it must be a regular file with
// mcpjail's owner, writable by that owner only.
func checkInitBinary(self, path string) (string, error) {
	fail := func(format string, a ...any) (string, error) {
		return "", fmt.Errorf("the init step %s: %s (%s is installed beside mcpjail, with its owner and mode 0755)",
			path, fmt.Sprintf(format, a...), initstep.BinaryName)
	}
	own, err := os.Stat(self)
	if err != nil {
		return "", fmt.Errorf("stat own executable: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fail("%v", err)
	}
	if !fi.Mode().IsRegular() {
		return fail("not a regular file (%s)", fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fail("mode %#o lets others than its owner replace it", perm)
	}
	if fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
		return fail("set-id bits %s", fi.Mode())
	}
	if uid, selfUID := fi.Sys().(*syscall.Stat_t).Uid, own.Sys().(*syscall.Stat_t).Uid; uid != selfUID {
		return fail("owned by uid %d, mcpjail by uid %d", uid, selfUID)
	}
	return path, nil
}
