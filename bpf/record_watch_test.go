package bpf

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// encodeAny lays out a generated record struct and checks its size, so
// that the decoder's offsets are checked against the C layout.
func encodeAny(t testing.TB, v any, size int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, v); err != nil {
		t.Fatal(err)
	}
	if b.Len() != size {
		t.Fatalf("generated %T is %d bytes, decoder expects %d", v, b.Len(), size)
	}
	return b.Bytes()
}

func putString(dst []int8, s string) {
	for i := range len(s) {
		dst[i] = int8(s[i])
	}
}

// withHeader writes a header into an encoded record (the generated header
// type is anonymous, so tests fill it as bytes, at the C offsets).
func withHeader(b []byte, kind uint16, verdict, action, layer uint8) []byte {
	le := binary.LittleEndian
	le.PutUint64(b[0:], 77)
	le.PutUint64(b[8:], 9)
	le.PutUint32(b[16:], 300)
	le.PutUint32(b[20:], 301)
	copy(b[24:40], "node")
	le.PutUint16(b[40:], kind)
	b[42], b[44], b[45] = verdict, action, layer
	return b
}

func execRecord(t testing.TB, verdict, action uint8, ret int32, path, args string, argc uint32, truncated bool) []byte {
	e := &execExecEvent{Ret: ret, Argc: argc, PathLen: uint16(len(path)), ArgsLen: uint16(len(args))}
	layer := uint8(layerBPF)
	if verdict == verdictDeny {
		layer, e.Syscall = layerLandlock, scExecve
	}
	if truncated {
		e.ArgsTruncated = 1
	}
	putString(e.Path[:], path)
	putString(e.Args[:], args)
	return withHeader(encodeAny(t, e, execEventSize), eventExec, verdict, action, layer)
}

func TestDecodeWatchRecords(t *testing.T) {
	base := Event{CgroupID: 77, PID: 300, TID: 301, Comm: "node", SinceBoot: 9 * time.Nanosecond}
	with := func(f func(e *Event)) Event { e := base; f(&e); return e }
	long := strings.Repeat("a", ArgsMax)

	open := &execOpenEvent{Ret: -int32(unix.EACCES),
		Dfd: unix.AT_FDCWD, Flags: unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC, PathLen: 4, Syscall: scOpenat}
	putString(open.Path[:], "a.db")
	openRec := withHeader(encodeAny(t, open, openEventSize), eventOpen, verdictDeny, actionNone, layerLandlock)
	killRec := withHeader(encodeAny(t, &execKillEvent{Ret: -int32(unix.EPERM), Syscall: scSendto}, killEventSize),
		eventKill, verdictDeny, actionKill, layerBPF)

	memfd := func(action uint8) []byte {
		e := &execExecEvent{Argc: 2, PathLen: uint16(len("/dev/fd/3")), ArgsLen: uint16(len("busybox\x00id\x00"))}
		putString(e.Path[:], "/dev/fd/3")
		putString(e.Args[:], "busybox\x00id\x00")
		b := withHeader(encodeAny(t, e, execEventSize), eventExec, verdictDeny, action, layerBPF)
		b[43] = reasonExecInternal
		return b
	}
	memfdReason := "exec of a file on an internal mount (a memfd), which no filesystem.exec path covers; " +
		"past the point where an exec can be refused, so the task got SIGKILL before its first instruction; argv [\"busybox\" \"id\"]"

	tests := []struct {
		name string
		rec  []byte
		want Event
	}{
		{"exec from a memfd", memfd(actionNone),
			with(func(e *Event) {
				e.Kind, e.Target, e.Path, e.Verdict = audit.KindExec, "/dev/fd/3", "/dev/fd/3", audit.VerdictDeny
				e.Args, e.ArgCount, e.Reason = []string{"busybox", "id"}, 2, memfdReason
			})},
		{"exec from a memfd, on_violation kill", memfd(actionKill),
			with(func(e *Event) {
				e.Kind, e.Target, e.Path, e.Verdict, e.Action = audit.KindExec, "/dev/fd/3", "/dev/fd/3", audit.VerdictDeny, audit.ActionKill
				e.Args, e.ArgCount, e.Reason = []string{"busybox", "id"}, 2, memfdReason+"; on_violation.exec is kill"
			})},
		{"allowed exec", execRecord(t, verdictAllow, actionNone, 0, "/usr/bin/git", "git\x00log\x00\x00", 3, false),
			with(func(e *Event) {
				e.Kind, e.Target, e.Path, e.Verdict = audit.KindExec, "/usr/bin/git", "/usr/bin/git", audit.VerdictAllow
				e.Args, e.ArgCount, e.Reason = []string{"git", "log", ""}, 3, `argv ["git" "log" ""]`
			})},
		{"cut argv", execRecord(t, verdictAllow, actionNone, 0, "/bin/x", long, 9, true),
			with(func(e *Event) {
				e.Kind, e.Target, e.Path, e.Verdict = audit.KindExec, "/bin/x", "/bin/x", audit.VerdictAllow
				e.Args, e.ArgCount, e.ArgsTruncated = []string{long}, 9, true
				e.Reason = `argv ["` + long + `"] (cut at 2048 bytes; 9 arguments in all)`
			})},
		{"refused exec, killed", execRecord(t, verdictDeny, actionKill, -int32(unix.EACCES), "/bin/sh", "", 0, false),
			with(func(e *Event) {
				e.Kind, e.Target, e.Path, e.Verdict = audit.KindExec, "/bin/sh", "/bin/sh", audit.VerdictDeny
				e.Layer, e.Action, e.Errno = audit.LayerLandlock, audit.ActionKill, unix.EACCES
				e.Reason = "execve refused with EACCES: not allowed by filesystem.exec, or not executable; on_violation.exec is kill: SIGKILL sent"
			})},
		{"refused exec without its path", execRecord(t, verdictDeny, actionNone, -int32(unix.EPERM), "", "", 0, false),
			with(func(e *Event) {
				e.Kind, e.Target, e.Verdict = audit.KindExec, "(path unavailable)", audit.VerdictDeny
				e.Layer, e.Errno = audit.LayerKernel, unix.EPERM // Landlock says EACCES
				e.Reason = "execve refused with EPERM: not allowed by filesystem.exec, or not executable"
			})},
		{"refused open", openRec,
			with(func(e *Event) {
				e.Kind, e.Target, e.Path, e.Verdict = audit.KindOpen, "a.db", "a.db", audit.VerdictDeny
				e.Layer, e.Errno, e.DirFD, e.Flags = audit.LayerLandlock, unix.EACCES, unix.AT_FDCWD, open.Flags
				e.Reason = "openat refused with EACCES, flags O_WRONLY|O_CREAT|O_TRUNC"
			})},
		{"network kill", killRec,
			with(func(e *Event) {
				e.Kind, e.Target, e.Verdict, e.Action, e.Errno = audit.KindKill, "sendto", audit.VerdictDeny, audit.ActionKill, unix.EPERM
				e.Reason = "sendto failed with EPERM and on_violation.network is kill: SIGKILL sent"
			})},
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

func TestDecodeWatchRefuses(t *testing.T) {
	exec := execRecord(t, verdictAllow, actionNone, 0, "/bin/x", "", 0, false)
	set := func(b []byte, off int, v byte) []byte { b = bytes.Clone(b); b[off] = v; return b }
	killNoAction := withHeader(encodeAny(t, &execKillEvent{}, killEventSize), eventKill, verdictDeny, actionNone, layerBPF)
	for name, b := range map[string][]byte{
		"short exec":          exec[:execEventSize-1],
		"unknown action":      set(exec, 44, 7),
		"unknown layer":       set(exec, 45, 7),
		"kill without action": killNoAction,
		"unknown exec reason": set(exec, 43, 99),
		"memfd exec allowed":  set(exec, 43, reasonExecInternal),
	} {
		if ev, err := decodeRecord(b); err == nil {
			t.Errorf("%s: decoded %+v", name, ev)
		}
	}
}

func TestOpenFlagsText(t *testing.T) {
	for flags, want := range map[uint64]string{
		unix.O_RDONLY: "O_RDONLY",
		unix.O_RDWR | unix.O_CLOEXEC | unix.O_NOFOLLOW: "O_RDWR|O_NOFOLLOW|O_CLOEXEC",
		unix.O_WRONLY | unix.O_TMPFILE:                 "O_WRONLY|O_TMPFILE",
		unix.O_WRONLY | unix.O_SYNC:                    "O_WRONLY|O_SYNC",
		unix.O_PATH | 1<<30:                            "O_RDONLY|O_PATH|010000000000",
	} {
		if got := OpenFlagsText(flags); got != want {
			t.Errorf("OpenFlagsText(%#o) = %q, want %q", flags, got, want)
		}
	}
}

func FuzzDecodeWatchRecord(f *testing.F) {
	f.Add(execRecord(f, verdictAllow, actionNone, 0, "/bin/x", "x\x00y", 2, false))
	f.Add(execRecord(f, verdictDeny, actionKill, -13, "/bin/sh", "", 0, false))
	f.Add(withHeader(encodeAny(f, &execKillEvent{Ret: -1}, killEventSize), eventKill, verdictDeny, actionKill, layerBPF))
	f.Add(taskRecord(f, eventFork, 7, 0))
	f.Add(taskRecord(f, eventTaskExit, 0, 0x8b))
	f.Add(seccompRecord(f, actionKill, scSocket, true, unix.AF_PACKET, unix.SOCK_RAW, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decodeRecord(b)
		if err != nil {
			return
		}
		// A fork has no target: the child is in ChildPID (see decodeTask).
		if ev.Kind == "" || (ev.Target == "" && (ev.Kind != audit.KindFork || ev.ChildPID <= 0)) || len(ev.Path) > PathMax {
			t.Fatalf("accepted %d bytes as %+v", len(b), ev)
		}
		if n := 0; ev.Args != nil {
			for _, a := range ev.Args {
				n += len(a) + 1
			}
			if n > ArgsMax+1 {
				t.Fatalf("%d bytes of args from a %d-byte area", n, ArgsMax)
			}
		}
	})
}
