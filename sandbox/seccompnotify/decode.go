package seccompnotify

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// describers decode the arguments that say what a refused call was after.
// They see registers only: pointers (paths, attributes) are not followed,
// because the caller's memory is the caller's to change, and reading it
// would need ptrace rights over the server.
var describers = map[string]func(a [6]uint64) string{
	"bpf":               func(a [6]uint64) string { return name(bpfCommands, a[0], "cmd ") },
	"perf_event_open":   func(a [6]uint64) string { return "pid " + intArg(a[1]) + " cpu " + intArg(a[2]) },
	"ptrace":            describePtrace,
	"process_vm_readv":  func(a [6]uint64) string { return "pid " + intArg(a[0]) },
	"process_vm_writev": func(a [6]uint64) string { return "pid " + intArg(a[0]) },
	"io_uring_setup":    func(a [6]uint64) string { return "entries " + uintArg(a[0]) },
	"io_uring_enter":    func(a [6]uint64) string { return "fd " + intArg(a[0]) },
	"io_uring_register": func(a [6]uint64) string { return "fd " + intArg(a[0]) + " opcode " + uintArg(a[1]) },
	"kexec_file_load":   func(a [6]uint64) string { return "fd " + intArg(a[0]) },
	"init_module":       func(a [6]uint64) string { return strconv.FormatUint(a[1], 10) + " bytes" },
	"finit_module":      func(a [6]uint64) string { return "fd " + intArg(a[0]) },
	"mount":             describeMount,
	"umount2":           func(a [6]uint64) string { return flags(uint64(uint32(a[1])), umountFlags) },
	"open_tree":         func(a [6]uint64) string { return flags(uint64(uint32(a[2])), openTreeFlags) },
	"fsmount":           func(a [6]uint64) string { return "fd " + intArg(a[0]) },
	"fsconfig":          func(a [6]uint64) string { return "fd " + intArg(a[0]) + " " + name(fsconfigCommands, a[1], "cmd ") },
	"keyctl":            func(a [6]uint64) string { return name(keyctlOps, a[0], "op ") },
	"unshare":           func(a [6]uint64) string { return flags(uint64(uint32(a[0])), cloneFlags) },
	"setns":             describeSetns,
	// Only clone's namespace flags are why it was refused; the rest of its
	// flags (and the exit signal in the low byte) are not shown.
	"clone":             func(a [6]uint64) string { return flags(a[0]&namespaceFlags, cloneFlags) },
	"reboot":            func(a [6]uint64) string { return "cmd 0x" + strconv.FormatUint(uint64(uint32(a[2])), 16) },
	"clock_settime":     func(a [6]uint64) string { return name(clockIDs, a[0], "clock ") },
	"quotactl":          func(a [6]uint64) string { return "cmd 0x" + strconv.FormatUint(uint64(uint32(a[0])), 16) },
	"quotactl_fd":       func(a [6]uint64) string { return "fd " + intArg(a[0]) },
	"open_by_handle_at": func(a [6]uint64) string { return "mount fd " + intArg(a[0]) },
}

// Describe is a refused call's target: its name, then what its arguments
// ask for when that is known, e.g. "bpf BPF_PROG_LOAD".
func Describe(syscall string, args [6]uint64) string {
	d, ok := describers[syscall]
	if !ok {
		return syscall
	}
	if s := d(args); s != "" {
		return syscall + " " + s
	}
	return syscall
}

func describePtrace(a [6]uint64) string {
	req := name(ptraceRequests, a[0], "request ")
	if uint32(a[0]) == unix.PTRACE_TRACEME {
		return req
	}
	return req + " pid " + intArg(a[1])
}

// msMgcVal is the magic old programs put in mount's upper flag bits.
const (
	msMgcMask = 0xffff0000
	msMgcVal  = 0xc0ed0000
)

func describeMount(a [6]uint64) string {
	f := a[3]
	if f&msMgcMask == msMgcVal {
		f &^= msMgcMask
	}
	return flags(f, mountFlags)
}

func describeSetns(a [6]uint64) string {
	s := "fd " + intArg(a[0])
	if ns := flags(uint64(uint32(a[1])), cloneFlags); ns != "" {
		s += " " + ns
	}
	return s
}

// intArg renders an int argument: the kernel reads the low 32 bits, signed.
func intArg(v uint64) string { return strconv.Itoa(int(int32(uint32(v)))) }

// uintArg renders an unsigned int argument (low 32 bits).
func uintArg(v uint64) string { return strconv.FormatUint(uint64(uint32(v)), 10) }

// name looks up an int argument in a table; unknown values are shown as
// prefix and number.
func name(table map[uint32]string, v uint64, prefix string) string {
	if s, ok := table[uint32(v)]; ok {
		return s
	}
	return prefix + strconv.FormatUint(uint64(uint32(v)), 10)
}

type flagName struct {
	bit  uint64
	name string
}

// flags renders a flag word as "A|B|0x30"; "" for no flags.
func flags(v uint64, table []flagName) string {
	var parts []string
	for _, f := range table {
		if v&f.bit == f.bit && f.bit != 0 {
			parts = append(parts, f.name)
			v &^= f.bit
		}
	}
	if v != 0 {
		parts = append(parts, "0x"+strconv.FormatUint(v, 16))
	}
	return strings.Join(parts, "|")
}
