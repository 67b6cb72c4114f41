package confine

import (
	"fmt"
	"math/bits"
	"runtime"
	"syscall"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// DeniedSyscall is one entry of the seccomp deny-list. Everything not on
// the list is allowed: Landlock, capabilities and the eBPF layer do the
// rest; this list only closes what a jailed server never needs and could
// use to escape or to blind the monitor.
type DeniedSyscall struct {
	Name string `json:"name"`
	// When describes the argument condition; empty when every call is denied.
	When   string        `json:"when,omitempty"`
	Errno  syscall.Errno `json:"errno"`
	Reason string        `json:"reason"`
}

// denyRule is a DeniedSyscall with its condition for the filter compiler:
// any one of conds (each a list of conditions that must all hold) matches.
type denyRule struct {
	DeniedSyscall
	conds []seccomp.ArgumentConditions
}

const (
	// cloneNewNamespaces are clone's namespace flags (CLONE_NEWTIME shares
	// its bit with the exit signal in clone; it exists only in clone3/unshare).
	cloneNewNamespaces = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
		unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET
	ipprotoMPTCP = 262
	// seccompDataArch is the offset of the arch field in struct seccomp_data.
	seccompDataArch    = 4
	bpfMaxInstructions = 4096
)

// seccompDenyTable is the deny-list, the one place it is written down.
// Built by a function so that no caller can change a shared table.
func seccompDenyTable() []denyRule {
	always := func(name, reason string) denyRule {
		return denyRule{DeniedSyscall: DeniedSyscall{Name: name, Errno: unix.EPERM, Reason: reason}}
	}
	mount := "changes the mount tree that Landlock's rules are made for"
	return []denyRule{
		always("bpf", "loads BPF programs and maps: could tamper with or blind mcpjail's eBPF monitor"),
		always("perf_event_open", "profiling and tracing: side channels, attaching BPF programs"),
		always("ptrace", "inspects and controls other processes of the same uid"),
		always("process_vm_readv", "reads another process's memory"),
		always("process_vm_writev", "writes another process's memory"),
		always("io_uring_setup", "io_uring does file and network I/O without the system calls the monitor watches"),
		always("io_uring_enter", "io_uring (see io_uring_setup)"),
		always("io_uring_register", "io_uring (see io_uring_setup)"),
		always("kexec_load", "replaces the running kernel"),
		always("kexec_file_load", "replaces the running kernel"),
		always("init_module", "loads kernel code"),
		always("finit_module", "loads kernel code"),
		always("delete_module", "unloads kernel code"),
		always("mount", mount),
		always("umount2", mount),
		always("pivot_root", mount),
		always("move_mount", mount),
		always("open_tree", mount),
		always("fsopen", mount),
		always("fsmount", mount),
		always("fsconfig", mount),
		always("fspick", mount),
		always("mount_setattr", mount),
		always("keyctl", "kernel keyrings reach beyond the jail"),
		always("add_key", "kernel keyrings reach beyond the jail"),
		always("request_key", "kernel keyrings reach beyond the jail"),
		always("unshare", "new namespaces: a user namespace brings capabilities back inside it"),
		always("setns", "joins another process's namespaces"),
		{
			DeniedSyscall: DeniedSyscall{Name: "clone", When: "flags contain a CLONE_NEW* namespace flag", Errno: unix.EPERM,
				Reason: "new namespaces: a user namespace brings capabilities back inside it"},
			// clone's flags are argument 0 on amd64 and arm64 alike.
			conds: []seccomp.ArgumentConditions{{{Argument: 0, Operation: seccomp.BitsSet, Value: cloneNewNamespaces}}},
		},
		{
			DeniedSyscall: DeniedSyscall{Name: "clone3", Errno: unix.ENOSYS,
				Reason: "its flags sit in memory seccomp cannot read; ENOSYS makes libc fall back to clone, which is checked"},
		},
		{
			DeniedSyscall: DeniedSyscall{Name: "socket", When: "protocol is IPPROTO_MPTCP (262)", Errno: unix.EPERM,
				Reason: "Landlock's TCP port rules do not cover MPTCP sockets"},
			conds: []seccomp.ArgumentConditions{lowWordEquals(2, ipprotoMPTCP)},
		},
		always("userfaultfd", "stalls the kernel at chosen page faults: a classic exploit primitive"),
		always("acct", "switches process accounting to a file"),
		always("swapon", "changes swap devices"),
		always("swapoff", "changes swap devices"),
		always("reboot", "reboots or halts the machine"),
		always("settimeofday", "sets the system clock"),
		always("clock_settime", "sets the system clock"),
		always("quotactl", "manages disk quotas"),
		always("quotactl_fd", "manages disk quotas"),
		always("lookup_dcookie", "turns kernel directory cookies into paths"),
		always("name_to_handle_at", "file handles: the first half of the open_by_handle_at escape"),
		always("open_by_handle_at", "opens files by handle, around every path check (the 'shocker' container escape)"),
	}
}

// SeccompDenyList is the deny-list for the README and `mcpjail doctor`.
func SeccompDenyList() []DeniedSyscall {
	table := seccompDenyTable()
	out := make([]DeniedSyscall, len(table))
	for i, r := range table {
		out[i] = r.DeniedSyscall
	}
	return out
}

// lowWordEquals matches when the low 32 bits of argument arg equal v,
// whatever the high bits hold. For int arguments the kernel ignores the high
// bits, so the library's Equal (which compares all 64) could be dodged by
// setting them. Equality is spelled as bit tests the library applies to the
// low word only: no bit outside v is set, and every bit of v is.
func lowWordEquals(arg uint32, v uint32) seccomp.ArgumentConditions {
	conds := seccomp.ArgumentConditions{{Argument: arg, Operation: seccomp.BitsNotSet, Value: uint64(^v)}}
	for rest := v; rest != 0; rest &= rest - 1 {
		bit := uint64(1) << bits.TrailingZeros32(rest)
		conds = append(conds, seccomp.Condition{Argument: arg, Operation: seccomp.BitsSet, Value: bit})
	}
	return conds
}

// nativeArch is the architecture the filter is written for. Anything else
// is refused rather than given a filter built from the wrong syscall table.
func nativeArch() (*arch.Info, error) {
	switch runtime.GOARCH {
	case "amd64":
		return arch.X86_64, nil
	case "arm64":
		return arch.AARCH64, nil
	}
	return nil, fmt.Errorf("seccomp deny-list: architecture %s is not supported (amd64, arm64 are)", runtime.GOARCH)
}

// seccompProgram compiles the deny-list for the native architecture.
//
// The library jumps to the default action (allow) when seccomp_data.arch is
// not the native one, which would let a 64-bit process bypass the list with
// 32-bit compat system calls (int 0x80 on x86_64). The prologue added here
// kills the process instead. x32 calls are refused (ENOSYS) by the library.
func seccompProgram() ([]bpf.Instruction, error) {
	native, err := nativeArch()
	if err != nil {
		return nil, err
	}
	if lib, err := arch.GetInfo(""); err != nil || lib.ID != native.ID {
		return nil, fmt.Errorf("seccomp library architecture differs from %s: %v", native.Name, err)
	}
	perm := seccomp.SyscallGroup{Action: seccomp.ActionErrno | seccomp.Action(unix.EPERM)}
	nosys := seccomp.SyscallGroup{Action: seccomp.ActionErrno | seccomp.Action(unix.ENOSYS)}
	for _, r := range seccompDenyTable() {
		g := &perm
		if r.Errno == unix.ENOSYS {
			g = &nosys
		}
		if len(r.conds) == 0 {
			g.Names = append(g.Names, r.Name)
			continue
		}
		for _, c := range r.conds {
			g.NamesWithCondtions = append(g.NamesWithCondtions, seccomp.NameWithConditions{Name: r.Name, Conditions: c})
		}
	}
	policy := seccomp.Policy{DefaultAction: seccomp.ActionAllow, Syscalls: []seccomp.SyscallGroup{perm, nosys}}
	body, err := policy.Assemble()
	if err != nil {
		return nil, fmt.Errorf("compile seccomp deny-list: %w", err)
	}
	prologue := []bpf.Instruction{
		bpf.LoadAbsolute{Off: seccompDataArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(native.ID), SkipTrue: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS},
	}
	prog := append(prologue, body...)
	if len(prog) > bpfMaxInstructions {
		return nil, fmt.Errorf("seccomp deny-list compiles to %d instructions (limit %d)", len(prog), bpfMaxInstructions)
	}
	return prog, nil
}

// installSeccomp loads prog on every thread (TSYNC). no_new_privs must
// already be set, which is what lets an unprivileged process do this.
func installSeccomp(prog []bpf.Instruction) error {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return fmt.Errorf("assemble seccomp filter: %w", err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, ins := range raw {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC,
		uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(filter)
	if errno != 0 {
		return fmt.Errorf("seccomp(SET_MODE_FILTER, TSYNC): %w", errno)
	}
	if r != 0 {
		// With TSYNC, a positive return is the thread that could not follow.
		return fmt.Errorf("seccomp TSYNC: thread %d could not be synchronized", r)
	}
	return nil
}
