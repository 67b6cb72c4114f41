package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// isRunTmp reports whether dir has the shape of the private TMPDIR that
// `mcpjail run` makes for the instance (sandbox.makePrivateTmp):
// /tmp/mcpjail-<name>-<instance>-<random>. Only such a directory is removed
// for a client, so that no request makes the daemon remove another
// directory of the user's, even with the user's own rights.
func isRunTmp(dir, instance string) bool {
	base := filepath.Base(dir)
	return filepath.Dir(dir) == "/tmp" && strings.HasPrefix(base, "mcpjail-") &&
		strings.Contains(base, "-"+instance+"-") && !strings.HasSuffix(base, "-")
}

// removeRunTmp removes a run's private TMPDIR when its jail ends. The
// client removes it too, but a client SIGKILLed by its MCP client cannot,
// and a run through the daemon has no cleanup guard: the daemon is the one
// that outlives the client (a restarted one too: the path is in the jail's
// record). Only a directory of the shape the client makes is removed.
func removeRunTmp(rec *jailRecord, logger *slog.Logger) {
	dir := rec.Vars.TmpDir
	if !isRunTmp(dir, rec.Server.Instance) {
		return // not one mcpjail run made: the client's own to remove
	}
	if err := removeAs(dir, rec.UID, rec.GID); err != nil {
		logger.Error("remove a run's TMPDIR", "server", rec.Server.Name, "instance", rec.Server.Instance, "err", err)
	}
}

// removeAs removes dir with the file system rights of uid and gid, never
// root's: inside a directory a user controls, root's rights would be a gift
// (and the unit does not keep CAP_DAC_OVERRIDE, so root could not enter a
// 0700 directory of another user anyway).
func removeAs(dir string, uid, gid int) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread with the user's fsuid ends with this
		// goroutine and serves nothing else.
		runtime.LockOSThread()
		errc <- removeAsFSUser(dir, uid, gid)
	}()
	return <-errc
}

// removeAsFSUser runs os.RemoveAll on the calling (locked) thread after
// setting its file system uid and gid. setfsuid and setfsgid return the
// previous id, never an error, so the change is read back (-1 changes
// nothing).
func removeAsFSUser(dir string, uid, gid int) error {
	_, _ = unix.SetfsgidRetGid(gid)
	_, _ = unix.SetfsuidRetUid(uid)
	if got, _ := unix.SetfsgidRetGid(-1); got != gid {
		return fmt.Errorf("remove %s: setfsgid %d did not take (fsgid %d)", dir, gid, got)
	}
	if got, _ := unix.SetfsuidRetUid(-1); got != uid {
		return fmt.Errorf("remove %s: setfsuid %d did not take (fsuid %d)", dir, uid, got)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove the run's TMPDIR as uid %d: %w", uid, err)
	}
	return nil
}
