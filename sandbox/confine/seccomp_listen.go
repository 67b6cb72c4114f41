package confine

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// listenerFlags install a filter on every thread with a listener; TSYNC
// and NEW_LISTENER go together only with TSYNC_ESRCH (Linux 5.7), which
// reports a thread that cannot follow as ESRCH instead of by its id.
const listenerFlags = unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH

// installSeccomp loads prog on every thread (TSYNC). no_new_privs must
// already be set, which is what lets an unprivileged process do this.
func installSeccomp(prog []bpf.Instruction) error {
	r, err := loadSeccomp(prog, unix.SECCOMP_FILTER_FLAG_TSYNC)
	if err != nil {
		return err
	}
	if r != 0 {
		// With TSYNC, a positive return is the thread that could not follow.
		return fmt.Errorf("seccomp TSYNC: thread %d could not be synchronized", r)
	}
	return nil
}

// installSeccompListener loads prog, which returns SECCOMP_RET_USER_NOTIF
// for the calls to report, on every thread and returns its listener (close
// on exec). Whoever holds the listener answers those calls: it must never
// reach the server, which could answer its own calls with "continue".
func installSeccompListener(prog []bpf.Instruction) (*os.File, error) {
	fd, err := loadSeccomp(prog, listenerFlags)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "seccomp-listener"), nil
}

func loadSeccomp(prog []bpf.Instruction, flags uintptr) (uintptr, error) {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return 0, fmt.Errorf("assemble seccomp filter: %w", err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, ins := range raw {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(filter)
	if errno != 0 {
		return 0, fmt.Errorf("seccomp(SET_MODE_FILTER, %s): %w", filterFlagNames(flags), errno)
	}
	return r, nil
}

func filterFlagNames(flags uintptr) string {
	if flags == listenerFlags {
		return "NEW_LISTENER|TSYNC|TSYNC_ESRCH"
	}
	return "TSYNC"
}

// errListenerTaken: a filter inherited from mcpjail's own parent (a
// container manager's, say) already has a listener, and the kernel allows
// one per chain of filters.
var errListenerTaken = errors.New("a seccomp filter inherited by mcpjail already has a listener (EBUSY)")

// NotifiedSyscalls maps the native number of every call reported by
// notification to its deny-list entry: the supervisor's answers.
func NotifiedSyscalls() (map[int]DeniedSyscall, error) {
	native, err := nativeArch()
	if err != nil {
		return nil, err
	}
	out := map[int]DeniedSyscall{}
	for _, r := range seccompDenyTable() {
		if r.Event != EventNotification {
			continue
		}
		nr, ok := native.SyscallNames[r.Name]
		if !ok && r.Legacy {
			continue
		}
		if !ok {
			return nil, fmt.Errorf("seccomp deny-list: no system call %s on %s", r.Name, native.Name)
		}
		out[nr] = r.DeniedSyscall
	}
	return out, nil
}
