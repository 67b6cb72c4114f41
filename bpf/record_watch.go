package bpf

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// reasonExecInternal (REASON_EXEC_INTERNAL in common.h): an exec of a file on
// an internal mount (a memfd), which exec.bpf.c kills at sched_process_exec.
const reasonExecInternal = 14

// Layout of the watch records (watch.h).
const (
	execEventSize = headerSize + 16 + PathMax + ArgsMax
	openEventSize = headerSize + 24 + PathMax
	killEventSize = headerSize + 8
)

// decodeActionLayer reads event_header.action and .layer.
func decodeActionLayer(e *Event, action, layer uint8) error {
	switch action {
	case actionNone:
	case actionKill:
		e.Action = audit.ActionKill
	default:
		return fmt.Errorf("decode event: unknown action %d", action)
	}
	switch layer {
	case layerBPF:
	case layerLandlock:
		e.Layer = audit.LayerLandlock
	case layerSeccomp:
		e.Layer = audit.LayerSeccomp
	case layerBPFLSM:
		e.Layer = audit.LayerBPFLSM
	default:
		return fmt.Errorf("decode event: unknown layer %d", layer)
	}
	return nil
}

// decodeWatch decodes the body of an exec, open or kill record; b is the
// whole record.
func decodeWatch(e *Event, kind uint16, b []byte) error {
	want := map[uint16]int{eventExec: execEventSize, eventOpen: openEventSize, eventKill: killEventSize}[kind]
	if len(b) < want {
		return fmt.Errorf("decode event: kind %d record of %d bytes, want %d", kind, len(b), want)
	}
	body := b[headerSize:]
	ret := int32(native.Uint32(body[0:]))
	if ret < 0 {
		e.Errno = syscall.Errno(-int64(ret))
	}
	if (kind == eventExec || kind == eventOpen) && e.Errno == syscall.EPERM {
		// Landlock refuses opens and execs with EACCES; an EPERM came from
		// elsewhere (the BPF-LSM hook, a file attribute).
		e.Layer = audit.LayerKernel
	}
	switch kind {
	case eventExec:
		if err := decodeExec(e, b[43], body); err != nil {
			return err
		}
	case eventOpen:
		decodeOpen(e, body)
	case eventKill:
		if e.Action != audit.ActionKill {
			return fmt.Errorf("decode event: kill record without the kill action")
		}
		e.Kind = audit.KindKill
		e.Target = syscallName(native.Uint16(body[4:]))
		e.Reason = fmt.Sprintf("%s failed with %s and on_violation.network is kill: SIGKILL sent", e.Target, errnoText(e.Errno))
	}
	return nil
}

func decodeExec(e *Event, reason uint8, body []byte) error {
	argc := native.Uint32(body[4:])
	pathLen := min(int(native.Uint16(body[8:])), PathMax)
	argsLen := min(int(native.Uint16(body[10:])), ArgsMax)
	truncated, sc := body[12] != 0, uint16(body[13])
	path := body[16 : 16+PathMax]
	args := body[16+PathMax : 16+PathMax+ArgsMax]

	e.Kind = audit.KindExec
	e.Path = cString(path[:pathLen])
	e.Target = targetPath(e.Path)
	switch {
	case reason == reasonExecInternal:
		if e.Verdict != audit.VerdictDeny {
			return fmt.Errorf("decode event: exec from an internal mount with verdict %q", e.Verdict)
		}
		e.Args = splitArgs(args[:argsLen])
		e.ArgsTruncated = truncated
		e.ArgCount = int(argc)
		e.Reason = "exec of a file on an internal mount (a memfd), which no filesystem.exec path covers; " +
			"past the point where an exec can be refused, so the task got SIGKILL before its first instruction; argv " + quoteArgs(e.Args)
		if e.Action == audit.ActionKill {
			e.Reason += "; on_violation.exec is kill"
		}
		return nil
	case reason != reasonNone:
		return fmt.Errorf("decode event: unknown exec reason %d", reason)
	case e.Verdict == audit.VerdictAllow:
		e.Args = splitArgs(args[:argsLen])
		e.ArgsTruncated = truncated
		e.ArgCount = int(argc)
		e.Reason = "argv " + quoteArgs(e.Args)
		if truncated {
			e.Reason += fmt.Sprintf(" (cut at %d bytes; %d arguments in all)", ArgsMax, argc)
		}
		return nil
	}
	e.Reason = fmt.Sprintf("%s refused with %s: not allowed by filesystem.exec, or not executable", syscallName(sc), errnoText(e.Errno))
	if e.Action == audit.ActionKill {
		e.Reason += "; on_violation.exec is kill: SIGKILL sent"
	}
	return nil
}

func decodeOpen(e *Event, body []byte) {
	e.DirFD = int(int32(native.Uint32(body[4:])))
	e.Flags = native.Uint64(body[8:])
	pathLen := min(int(native.Uint16(body[16:])), PathMax)
	sc := native.Uint16(body[18:])
	e.Kind = audit.KindOpen
	e.Path = cString(body[24 : 24+pathLen])
	e.Target = targetPath(e.Path)
	e.Reason = fmt.Sprintf("%s refused with %s, flags %s", syscallName(sc), errnoText(e.Errno), OpenFlagsText(e.Flags))
}

// targetPath is the event target for a path the kernel side could not read
// (its register layout unknown or the memory unreadable).
func targetPath(p string) string {
	if p == "" {
		return "(path unavailable)"
	}
	return p
}

// splitArgs splits a NUL-separated argument area. A cut area ends inside an
// argument, which is kept as far as it goes.
func splitArgs(b []byte) []string {
	s := string(b)
	s = strings.TrimSuffix(s, "\x00")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = strconv.QuoteToASCII(a)
	}
	return "[" + strings.Join(q, " ") + "]"
}

func errnoText(e syscall.Errno) string {
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return "errno " + strconv.Itoa(int(e))
}

// openFlagNames lists open(2) flags, composite ones before their parts.
var openFlagNames = []struct {
	name string
	bits uint64
}{
	{"O_TMPFILE", unix.O_TMPFILE}, {"O_SYNC", unix.O_SYNC}, {"O_CREAT", unix.O_CREAT},
	{"O_EXCL", unix.O_EXCL}, {"O_NOCTTY", unix.O_NOCTTY}, {"O_TRUNC", unix.O_TRUNC},
	{"O_APPEND", unix.O_APPEND}, {"O_NONBLOCK", unix.O_NONBLOCK}, {"O_DSYNC", unix.O_DSYNC},
	{"O_ASYNC", unix.O_ASYNC}, {"O_DIRECT", unix.O_DIRECT}, {"O_DIRECTORY", unix.O_DIRECTORY},
	{"O_NOFOLLOW", unix.O_NOFOLLOW}, {"O_NOATIME", unix.O_NOATIME}, {"O_CLOEXEC", unix.O_CLOEXEC},
	{"O_PATH", unix.O_PATH},
}

// OpenFlagsText renders open flags as "O_WRONLY|O_CREAT|O_TRUNC"; bits it
// has no name for are shown in octal.
func OpenFlagsText(flags uint64) string {
	names := []string{[]string{"O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"}[flags&unix.O_ACCMODE]}
	rest := flags &^ unix.O_ACCMODE
	for _, f := range openFlagNames {
		if f.bits != 0 && rest&f.bits == f.bits {
			names = append(names, f.name)
			rest &^= f.bits
		}
	}
	if rest != 0 {
		names = append(names, "0"+strconv.FormatUint(rest, 8))
	}
	return strings.Join(names, "|")
}
