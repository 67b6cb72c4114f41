package bpf

import (
	"reflect"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

func taskRecord(t testing.TB, kind uint16, child uint32, exitCode int32) []byte {
	return withHeader(encodeAny(t, &execTaskEvent{Child: child, ExitCode: exitCode}, taskEventSize),
		kind, verdictAllow, actionNone, layerBPF)
}

func seccompRecord(t testing.TB, action uint8, sc uint16, haveArgs bool, args ...uint64) []byte {
	e := &execSeccompEvent{Ret: -int32(unix.EPERM), Syscall: sc}
	if haveArgs {
		e.HaveArgs = 1
	}
	copy(e.Args[:], args)
	return withHeader(encodeAny(t, e, seccompEventSize), eventSeccomp, verdictDeny, action, layerSeccomp)
}

func TestDecodeTaskAndSeccompRecords(t *testing.T) {
	base := Event{CgroupID: 77, PID: 300, TID: 301, Comm: "node", SinceBoot: 9 * time.Nanosecond}
	with := func(f func(e *Event)) Event { e := base; f(&e); return e }
	exited := func(target string, code int, sig syscall.Signal) Event {
		return with(func(e *Event) {
			e.Kind, e.Verdict, e.Target, e.ExitCode, e.ExitSignal = audit.KindTaskExit, audit.VerdictAllow, target, code, sig
		})
	}
	seccompDeny := func(target, reason string, action audit.Action) Event {
		return with(func(e *Event) {
			e.Kind, e.Verdict, e.Layer, e.Action, e.Errno = audit.KindSocket, audit.VerdictDeny, audit.LayerSeccomp, action, unix.EPERM
			e.Target, e.Reason = target, reason
		})
	}
	tests := []struct {
		name string
		rec  []byte
		want Event
	}{
		{"fork", taskRecord(t, eventFork, 4242, 0),
			with(func(e *Event) { e.Kind, e.Verdict, e.ChildPID = audit.KindFork, audit.VerdictAllow, 4242 })},
		{"exit status", taskRecord(t, eventTaskExit, 0, 3<<8), exited("status 3", 3, 0)},
		{"exit status 0", taskRecord(t, eventTaskExit, 0, 0), exited("status 0", 0, 0)},
		{"killed", taskRecord(t, eventTaskExit, 0, int32(unix.SIGKILL)), exited("signal SIGKILL", 137, unix.SIGKILL)},
		{"core dump", taskRecord(t, eventTaskExit, 0, int32(unix.SIGSEGV)|0x80),
			exited("signal SIGSEGV (core dumped)", 128+int(unix.SIGSEGV), unix.SIGSEGV)},
		{"packet socket", seccompRecord(t, actionNone, scSocket, true, unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0x300),
			seccompDeny("socket AF_PACKET/SOCK_RAW", "socket(AF_PACKET, SOCK_RAW|SOCK_CLOEXEC, 768) refused with EPERM by the seccomp deny-list", "")},
		{"netlink audit, killed", seccompRecord(t, actionKill, scSocket, true, unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT),
			seccompDeny("socket AF_NETLINK/SOCK_RAW/NETLINK_AUDIT",
				"socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT) refused with EPERM by the seccomp deny-list; on_violation.network is kill: SIGKILL sent",
				audit.ActionKill)},
		{"MPTCP, flags", seccompRecord(t, actionNone, scSocket, true, unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|0x4000, 262),
			seccompDeny("socket AF_INET/SOCK_STREAM/IPPROTO_MPTCP",
				"socket(AF_INET, SOCK_STREAM|SOCK_NONBLOCK|0x4000, IPPROTO_MPTCP) refused with EPERM by the seccomp deny-list", "")},
		// The kernel reads int arguments: high bits of the register are ignored.
		{"high bits", seccompRecord(t, actionNone, scSocketpair, true, 1<<32|unix.AF_PACKET, unix.SOCK_DGRAM, 1<<40),
			seccompDeny("socketpair AF_PACKET/SOCK_DGRAM", "socketpair(AF_PACKET, SOCK_DGRAM, 0) refused with EPERM by the seccomp deny-list", "")},
		{"unknown values", seccompRecord(t, actionNone, scSocket, true, 70000, 9, 0),
			seccompDeny("socket AF_70000/SOCK_9", "socket(AF_70000, SOCK_9, 0) refused with EPERM by the seccomp deny-list", "")},
		{"no arguments", seccompRecord(t, actionNone, scSocket, false),
			seccompDeny("socket (arguments unavailable)", "socket refused with EPERM by the seccomp deny-list", "")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := decodeRecord(tc.rec)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ev, tc.want) {
				t.Errorf("got  %+v\nwant %+v", ev, tc.want)
			}
		})
	}
}

func TestDecodeTaskAndSeccompRefuses(t *testing.T) {
	fork := taskRecord(t, eventFork, 1, 0)
	seccomp := seccompRecord(t, actionNone, scSocket, true, unix.AF_PACKET, unix.SOCK_RAW, 0)
	for name, b := range map[string][]byte{
		"short fork":            fork[:taskEventSize-1],
		"fork without a child":  taskRecord(t, eventFork, 0, 0),
		"short seccomp":         seccomp[:seccompEventSize-1],
		"seccomp, other layer":  withHeader(append([]byte(nil), seccomp...), eventSeccomp, verdictDeny, actionNone, layerBPF),
		"seccomp, not a socket": seccompRecord(t, actionNone, scConnect, true),
	} {
		if ev, err := decodeRecord(b); err == nil {
			t.Errorf("%s: decoded %+v", name, ev)
		}
	}
}

// TestTaskAuditEvent checks what the audit log gets: the child's pid on a
// fork, the shell-style status on an exit.
func TestTaskAuditEvent(t *testing.T) {
	now := time.Unix(1, 0)
	fork, err := decodeRecord(taskRecord(t, eventFork, 4242, 0))
	if err != nil {
		t.Fatal(err)
	}
	if a := fork.Audit(now); a.Kind != audit.KindFork || a.ChildPID != 4242 || a.PID != 300 || a.ExitCode != nil || a.Layer != audit.LayerBPF {
		t.Errorf("fork audit event %+v", a)
	}
	exit, err := decodeRecord(taskRecord(t, eventTaskExit, 0, int32(unix.SIGKILL)))
	if err != nil {
		t.Fatal(err)
	}
	if a := exit.Audit(now); a.Kind != audit.KindTaskExit || a.ExitCode == nil || *a.ExitCode != 137 || a.Target != "signal SIGKILL" {
		t.Errorf("exit audit event %+v", a)
	}
}
