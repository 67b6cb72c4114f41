package sandbox

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/mcpjail/mcpjail/sandbox/initstep"
)

// mcpjail is three binaries installed side by side: mcpjail (the CLI and
// the launcher), mcpjail-init (the init step every jail runs before its
// server) and mcpjail-daemon (`mcpjail daemon`). Each is small where it
// matters: every process pays for its binary's package initialisation.
const (
	McpjailBinary = "mcpjail"
	DaemonBinary  = "mcpjail-daemon"
)

// Sibling is the path of the mcpjail binary name installed beside the
// running one. The init step runs inside every jail, as root for a
// standalone root run, and the daemon is root: each must be trusted
// exactly as the running binary is.
func Sibling(name string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own executable: %w", err)
	}
	return checkSibling(self, filepath.Join(filepath.Dir(self), name))
}

// initBinary is the init step's executable.
func initBinary() (string, error) { return Sibling(initstep.BinaryName) }

// checkSibling refuses a binary that anyone could have replaced who could
// not replace the running one (at self): it must be a regular file with
// self's owner, writable by that owner only.
func checkSibling(self, path string) (string, error) {
	fail := func(format string, a ...any) (string, error) {
		return "", fmt.Errorf("%s: %s (%s is installed beside %s, with its owner and mode 0755)",
			path, fmt.Sprintf(format, a...), filepath.Base(path), filepath.Base(self))
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
		return fail("owned by uid %d, %s by uid %d", uid, filepath.Base(self), selfUID)
	}
	return path, nil
}
