package bpf

import (
	"fmt"
	"os"
	"slices"
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
	return execveatFD(unix.AT_FDCWD, path, args, 0)
}

// execveatFD is execveat(2) with every argument, as raw as the kernel sees it.
func execveatFD(dfd int, path string, args []string, flags int) error {
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
	_, _, errno := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(dfd), uintptr(unsafe.Pointer(p)),
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])), uintptr(flags), 0)
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

// TestMemfdExecKilled: an exec of a memfd is in no filesystem.exec path, and
// Landlock lets it through (it checks only the visible hierarchy), so the
// exec watch kills the task at sched_process_exec, before the new image runs
// (the shell never prints its result), with on_violation.exec kill or deny;
// the event says why and carries the action only for kill. Outside the jail
// the same exec runs.
func TestMemfdExecKilled(t *testing.T) {
	requireKernel(t)
	if fd, err := unix.MemfdCreate("probe", unix.MFD_CLOEXEC); err != nil {
		skipOrFail(t, fmt.Sprintf("memfd_create: %v", err))
	} else {
		unix.Close(fd)
	}
	l := newLoader(t)
	events := collect(l)
	step := watchStep{Op: "memfd exec", Path: "/bin/sh", Args: []string{"sh", "-c", `echo '["ran"]'`}}

	if run := runWatchHelper(t, nil, watchRequest{Steps: []watchStep{step}}); run.signal != 0 || !slices.Equal(run.results, []string{"ran"}) {
		t.Fatalf("outside the jail: signal %v, results %v; want the shell from the memfd to run", run.signal, run.results)
	}
	for _, action := range []profiles.Action{profiles.ActionKill, profiles.ActionDeny} {
		t.Run(string(action), func(t *testing.T) {
			p := loopbackPolicy(1)
			p.OnViolation.Exec = action
			grp := registerJail(t, l, p)
			run := runWatchHelper(t, grp, watchRequest{Steps: []watchStep{step}})
			if run.signal != syscall.SIGKILL {
				t.Fatalf("helper: signal %v, results %v; want killed by SIGKILL before the shell ran", run.signal, run.results)
			}
			ev := events.wait(t, string(audit.KindExec), fmt.Sprintf("/dev/fd/%d", memfdExecFD), run.pid)
			wantAction := audit.Action("")
			if action == profiles.ActionKill {
				wantAction = audit.ActionKill
			}
			if ev.Verdict != audit.VerdictDeny || ev.Action != wantAction || ev.CgroupID != grp.ID() ||
				!strings.Contains(ev.Reason, "internal mount (a memfd)") || !slices.Equal(ev.Args, step.Args) {
				t.Errorf("event %+v: want deny of the memfd exec, action %q, its argv", ev, wantAction)
			}
		})
	}
}
