package bpf

import (
	"fmt"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// taskEventSize is struct task_event (watch.h): the header, the child's
// pid and the exit code.
const taskEventSize = headerSize + 8

// decodeTask decodes a fork or task_exit record (task.bpf.c); b is the
// whole record. Neither carries the child pid or the status in Target or
// Reason, so that a fork bomb's records fold into one (sandbox/audit).
func decodeTask(e *Event, kind uint16, b []byte) error {
	if len(b) < taskEventSize {
		return fmt.Errorf("decode event: kind %d record of %d bytes, want %d", kind, len(b), taskEventSize)
	}
	body := b[headerSize:]
	switch kind {
	case eventFork:
		e.Kind = audit.KindFork
		e.ChildPID = int(native.Uint32(body[0:]))
		if e.ChildPID <= 0 {
			return fmt.Errorf("decode event: fork record without a child pid")
		}
	case eventTaskExit:
		e.Kind = audit.KindTaskExit
		e.ExitCode, e.ExitSignal, e.Target = exitStatus(native.Uint32(body[4:]))
	}
	return nil
}

// exitStatus reads task->exit_code as wait(2) does: the low 7 bits are the
// signal that ended the task, bit 7 a core dump, bits 8-15 the exit status.
func exitStatus(code uint32) (int, syscall.Signal, string) {
	sig := syscall.Signal(code & 0x7f)
	if sig == 0 {
		status := int(code >> 8 & 0xff)
		return status, 0, "status " + strconv.Itoa(status)
	}
	target := "signal " + signalName(sig)
	if code&0x80 != 0 {
		target += " (core dumped)"
	}
	return 128 + int(sig), sig, target
}

func signalName(s syscall.Signal) string {
	if n := unix.SignalName(s); n != "" {
		return n
	}
	return strconv.Itoa(int(s))
}
