package bpf

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// execveat calls execveat(AT_FDCWD, path, args, environ, 0) directly:
// neither the syscall package nor x/sys/unix wraps it.
func execveat(path string, args []string) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	argv, err := syscall.SlicePtrFromStrings(args)
	if err != nil {
		return err
	}
	envv, err := syscall.SlicePtrFromStrings(os.Environ())
	if err != nil {
		return err
	}
	dfd := unix.AT_FDCWD
	_, _, errno := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(dfd), uintptr(unsafe.Pointer(p)),
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])), 0, 0)
	return errno
}

// TestExecveatRefused checks the refused execveat, whose path is its second
// argument: read at sys_exit from the saved registers, it is in the event,
// and with exec kill the caller dies.
func TestExecveatRefused(t *testing.T) {
	requireKernel(t)
	requireLandlock(t)
	l := newLoader(t)
	events := collect(l)
	p := loopbackPolicy(1)
	p.OnViolation.Exec = profiles.ActionKill
	grp := registerJail(t, l, p)
	run := runWatchHelper(t, grp, watchRequest{
		Confine: confinedPolicy(nil, nil),
		Steps:   []watchStep{{Op: "execveat", Path: "/bin/sh", Args: []string{"sh", "-c", "true"}}},
	})
	if run.signal != syscall.SIGKILL {
		t.Fatalf("signal %v, results %v; want killed by SIGKILL", run.signal, run.results)
	}
	ev := events.wait(t, string(audit.KindExec), "/bin/sh", run.pid)
	if ev.Verdict != audit.VerdictDeny || ev.Layer != audit.LayerLandlock || ev.Action != audit.ActionKill ||
		ev.Errno != unix.EACCES || !strings.HasPrefix(ev.Reason, "execveat refused") {
		t.Errorf("event %+v: want an execveat refused by landlock, killed", ev)
	}
}
