package confine

import (
	"fmt"
	"math/bits"
	"runtime"
	"slices"
	"syscall"

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
	// Event says how a refusal becomes an audit event.
	Event EventSource `json:"event"`
	// Legacy marks a system call that newer architectures (arm64) replaced
	// by its *at form: it is denied where the architecture has it.
	Legacy bool `json:"legacy,omitempty"`
}

// EventSource is how a refusal of the deny-list becomes an audit event.
type EventSource string

const (
	// EventNotification: the filter returns SECCOMP_RET_USER_NOTIF and
	// mcpjail answers with the errno and reports the call
	// (sandbox/seccompnotify); with the filter installed by Apply, or on a
	// kernel without notifications, the filter answers by itself, silently.
	EventNotification EventSource = "notification"
	// EventTracepoint: the filter answers; the eBPF layer sees the refused
	// call at its exit (bpf/sockwatch.bpf.c) and can kill on it.
	EventTracepoint EventSource = "tracepoint"
	// EventNone: not reported. clone3 is tried once by every glibc program,
	// which falls back to clone on ENOSYS: not an attempt worth an event.
	EventNone EventSource = "none"
)

// denyRule is a DeniedSyscall with its condition for the filter compiler:
// any one of conds (each a list of conditions that must all hold) matches.
type denyRule struct {
	DeniedSyscall
	conds []seccomp.ArgumentConditions
	// withoutBind: only for a profile that lists no network.bind port.
	withoutBind bool
}

const (
	// cloneNewNamespaces are clone's namespace flags (CLONE_NEWTIME shares
	// its bit with the exit signal in clone; it exists only in clone3/unshare).
	cloneNewNamespaces = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
		unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET
	ipprotoMPTCP = 262
	// sockTypeMask selects the socket type in socket's type argument; the
	// bits above it are SOCK_NONBLOCK and SOCK_CLOEXEC.
	sockTypeMask = 0xf
	// netlinkRoute is NETLINK_ROUTE, the one netlink protocol left open:
	// Node, Go and glibc list interfaces and addresses through it.
	netlinkRoute = 0
	// seccompDataArch is the offset of the arch field in struct seccomp_data.
	seccompDataArch    = 4
	bpfMaxInstructions = 4096
)

// seccompDenyTable is the deny-list, the one place it is written down.
// Built by a function so that no caller can change a shared table.
func seccompDenyTable() []denyRule {
	always := func(name, reason string) denyRule {
		return denyRule{DeniedSyscall: DeniedSyscall{Name: name, Errno: unix.EPERM, Reason: reason, Event: EventNotification}}
	}
	mount := "changes the mount tree that Landlock's rules are made for"
	// The families socket and socketpair may use: UNIX and IP sockets, and
	// netlink for NETLINK_ROUTE (its protocol is checked separately).
	families := []uint32{unix.AF_UNIX, unix.AF_INET, unix.AF_INET6, unix.AF_NETLINK}
	familyWhen := "family is not AF_UNIX, AF_INET, AF_INET6 or AF_NETLINK"
	familyReason := "the eBPF layer's socket hook sees only AF_INET/AF_INET6; packet, vsock, alg, xdp, bluetooth ... are not needed"
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
				Reason: "new namespaces: a user namespace brings capabilities back inside it", Event: EventNotification},
			// clone's flags are argument 0 on amd64 and arm64 alike.
			conds: []seccomp.ArgumentConditions{{{Argument: 0, Operation: seccomp.BitsSet, Value: cloneNewNamespaces}}},
		},
		{
			DeniedSyscall: DeniedSyscall{Name: "clone3", Errno: unix.ENOSYS, Event: EventNone,
				Reason: "its flags sit in memory seccomp cannot read; ENOSYS makes libc fall back to clone, which is checked"},
		},
		{
			DeniedSyscall: DeniedSyscall{Name: "socket", When: familyWhen, Errno: unix.EPERM, Reason: familyReason, Event: EventTracepoint},
			conds:         lowWordNotIn(0, families...),
		},
		{
			DeniedSyscall: DeniedSyscall{Name: "socketpair", When: familyWhen, Errno: unix.EPERM, Reason: familyReason, Event: EventTracepoint},
			conds:         lowWordNotIn(0, families...),
		},
		{
			DeniedSyscall: DeniedSyscall{Name: "socket", When: "family is AF_NETLINK and protocol is not NETLINK_ROUTE (0)", Errno: unix.EPERM, Event: EventTracepoint,
				Reason: "audit, sock_diag, uevent ... report on the whole host; listing interfaces needs only NETLINK_ROUTE"},
			conds: allOf(lowWordEquals(0, unix.AF_NETLINK), lowWordNotIn(2, netlinkRoute)),
		},
		{
			DeniedSyscall: DeniedSyscall{Name: "socket", When: "family is AF_INET or AF_INET6 and type is SOCK_RAW (3)", Errno: unix.EPERM, Event: EventTracepoint,
				Reason: "raw IP goes around the TCP/UDP port rules (impossible anyway without CAP_NET_RAW; refused here explicitly)"},
			conds: []seccomp.ArgumentConditions{
				append(lowWordEquals(0, unix.AF_INET), lowBitsEqual(1, sockTypeMask, unix.SOCK_RAW)...),
				append(lowWordEquals(0, unix.AF_INET6), lowBitsEqual(1, sockTypeMask, unix.SOCK_RAW)...),
			},
		},
		{
			DeniedSyscall: DeniedSyscall{Name: "socket", When: "protocol is IPPROTO_MPTCP (262)", Errno: unix.EPERM, Event: EventTracepoint,
				Reason: "Landlock's TCP port rules do not cover MPTCP sockets"},
			conds: []seccomp.ArgumentConditions{lowWordEquals(2, ipprotoMPTCP)},
		},
		{
			DeniedSyscall: DeniedSyscall{Name: "ioctl", When: "request is TIOCSTI or TIOCLINUX", Errno: unix.EPERM, Event: EventNotification,
				Reason: "TIOCSTI types into the terminal the server shares with the operator, whose shell reads it after the server exits (CVE-2017-5226); TIOCLINUX reaches the console"},
			// ioctl's request is an unsigned int, argument 1.
			conds: []seccomp.ArgumentConditions{lowWordEquals(1, unix.TIOCSTI), lowWordEquals(1, unix.TIOCLINUX)},
		},
		{
			DeniedSyscall: DeniedSyscall{Name: "listen", When: "the profile lists no network.bind port", Errno: unix.EPERM, Event: EventNotification,
				Reason: "listen without bind takes a port the kernel picks, which Landlock's bind rules never see; a connection accepted there sends to whoever connected, outside network.egress"},
			withoutBind: true,
		},
		fastOpen("sendto", 3),
		fastOpen("sendmsg", 2),
		fastOpen("sendmmsg", 3),
		setIDMode("chmod", 1, true),
		setIDMode("fchmod", 1, false),
		setIDMode("fchmodat", 2, false),
		setIDMode("fchmodat2", 2, false),
		setIDMode("creat", 1, true),
		setIDMode("mknod", 1, true),
		setIDMode("mknodat", 2, false),
		setIDCreate("open", 1, 2),
		setIDCreate("openat", 2, 3),
		{
			DeniedSyscall: DeniedSyscall{Name: "openat2", Errno: unix.ENOSYS, Event: EventNone,
				Reason: "its mode sits in memory seccomp cannot read (see openat); ENOSYS makes callers fall back to openat, which is checked"},
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

// fastOpen refuses a send with MSG_FASTOPEN (flags are argument flagsArg):
// on TCP it connects without connect(2), so Landlock's connect rules never
// see it (landlock-lsm/linux#41); the eBPF cgroup hook does, but a run
// without the eBPF layer has only Landlock. Nothing needs it: Node, Go and
// libc never set it unless asked.
func fastOpen(name string, flagsArg uint32) denyRule {
	return denyRule{
		DeniedSyscall: DeniedSyscall{Name: name, When: "flags contain MSG_FASTOPEN", Errno: unix.EPERM, Event: EventNotification,
			Reason: "TCP Fast Open connects without connect(2), around Landlock's TCP connect rules"},
		conds: []seccomp.ArgumentConditions{{{Argument: flagsArg, Operation: seccomp.BitsSet, Value: unix.MSG_FASTOPEN}}},
	}
}

// setIDReason is why the deny-list refuses the set-user-ID and set-group-ID
// mode bits.
const setIDReason = "a set-user-ID or set-group-ID file made in a writable directory outlives the jail: " +
	"whoever runs it later is the server's user (root's, for a server run as root), outside any jail"

// modeSetID is S_ISUID | S_ISGID.
const modeSetID = unix.S_ISUID | unix.S_ISGID

// setIDMode refuses a chmod or a creation whose mode argument (modeArg)
// has S_ISUID or S_ISGID. legacy: the call has no arm64 form.
func setIDMode(name string, modeArg uint32, legacy bool) denyRule {
	return denyRule{
		DeniedSyscall: DeniedSyscall{Name: name, When: "mode has S_ISUID or S_ISGID", Errno: unix.EPERM, Event: EventNotification,
			Reason: setIDReason, Legacy: legacy},
		conds: []seccomp.ArgumentConditions{{{Argument: modeArg, Operation: seccomp.BitsSet, Value: modeSetID}}},
	}
}

// setIDCreate is setIDMode for open and openat, whose mode counts only
// with O_CREAT or O_TMPFILE in their flags (flagsArg).
func setIDCreate(name string, flagsArg, modeArg uint32) denyRule {
	mode := seccomp.Condition{Argument: modeArg, Operation: seccomp.BitsSet, Value: modeSetID}
	return denyRule{
		DeniedSyscall: DeniedSyscall{Name: name, When: "flags have O_CREAT or O_TMPFILE and mode has S_ISUID or S_ISGID", Errno: unix.EPERM,
			Event: EventNotification, Reason: setIDReason, Legacy: name == "open"},
		conds: []seccomp.ArgumentConditions{
			{{Argument: flagsArg, Operation: seccomp.BitsSet, Value: unix.O_CREAT}, mode},
			// O_TMPFILE is __O_TMPFILE | O_DIRECTORY; the first bit alone says it.
			{{Argument: flagsArg, Operation: seccomp.BitsSet, Value: unix.O_TMPFILE &^ unix.O_DIRECTORY}, mode},
		},
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
// setting them.
func lowWordEquals(arg uint32, v uint32) seccomp.ArgumentConditions {
	return lowBitsEqual(arg, 0xffff_ffff, v)
}

// lowBitsEqual matches when the bits of mask in argument arg equal v (v
// lies within mask, mask within the low word). Equality is spelled as the
// only operations the library applies to the low word alone, bit tests
// whose value has no high bits: no bit of mask outside v is set, and every
// bit of v is (BitsSet means "any of", so one condition per bit).
func lowBitsEqual(arg, mask, v uint32) seccomp.ArgumentConditions {
	conds := seccomp.ArgumentConditions{{Argument: arg, Operation: seccomp.BitsNotSet, Value: uint64(mask &^ v)}}
	return append(conds, eachBitSet(arg, v)...)
}

// allOf matches when cond and one of alternatives hold.
func allOf(cond seccomp.ArgumentConditions, alternatives []seccomp.ArgumentConditions) []seccomp.ArgumentConditions {
	out := make([]seccomp.ArgumentConditions, len(alternatives))
	for i, alt := range alternatives {
		out[i] = slices.Concat(cond, alt)
	}
	return out
}

func eachBitSet(arg, v uint32) seccomp.ArgumentConditions {
	var conds seccomp.ArgumentConditions
	for rest := v; rest != 0; rest &= rest - 1 {
		bit := uint64(1) << bits.TrailingZeros32(rest)
		conds = append(conds, seccomp.Condition{Argument: arg, Operation: seccomp.BitsSet, Value: bit})
	}
	return conds
}

// lowWordNotIn matches when the low 32 bits of argument arg are none of
// allowed (its alternatives are OR'ed). The allowed values form a binary
// trie over bits 31..0; each way out of the trie is one alternative: the
// bits fixed on the way down, then a bit no allowed value has at that
// level. Levels where every value has 0 are left in one step: "any of
// these bits set".
func lowWordNotIn(arg uint32, allowed ...uint32) []seccomp.ArgumentConditions {
	if len(allowed) == 0 { // nothing allowed: match always (no bit of 0 is set)
		return []seccomp.ArgumentConditions{{{Argument: arg, Operation: seccomp.BitsNotSet, Value: 0}}}
	}
	var out []seccomp.ArgumentConditions
	// leave is one way out below the prefix: set bits all set, clear bits all clear.
	leave := func(set, clear uint32, exit seccomp.Condition) {
		conds := eachBitSet(arg, set)
		if clear != 0 {
			conds = append(conds, seccomp.Condition{Argument: arg, Operation: seccomp.BitsNotSet, Value: uint64(clear)})
		}
		out = append(out, append(conds, exit))
	}
	var walk func(values []uint32, bit int, set, clear uint32)
	walk = func(values []uint32, bit int, set, clear uint32) {
		for bit >= 0 {
			levels := uint32(uint64(1)<<(bit+1) - 1) // bits bit..0
			var ones, zeros []uint32
			var union uint32
			for _, v := range values {
				union |= v
				if v&(1<<bit) != 0 {
					ones = append(ones, v)
				} else {
					zeros = append(zeros, v)
				}
			}
			switch {
			case len(ones) == 0:
				run := levels // down to the next bit some value has, or to bit 0
				if below := union & levels; below != 0 {
					top := 31 - bits.LeadingZeros32(below)
					run = levels &^ uint32(uint64(1)<<(top+1)-1)
				}
				leave(set, clear, seccomp.Condition{Argument: arg, Operation: seccomp.BitsSet, Value: uint64(run)})
				clear |= run
				bit -= bits.OnesCount32(run)
			case len(zeros) == 0:
				leave(set, clear, seccomp.Condition{Argument: arg, Operation: seccomp.BitsNotSet, Value: uint64(1) << bit})
				set |= 1 << bit
				bit--
			default:
				walk(ones, bit-1, set|1<<bit, clear)
				values, clear, bit = zeros, clear|1<<bit, bit-1
			}
		}
	}
	walk(allowed, 31, 0, 0)
	return out
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

// seccompProgram compiles the deny-list for the native architecture. With
// notify, the calls reported by notification return SECCOMP_RET_USER_NOTIF
// (the supervisor answers them with their errno); without, every call
// returns its errno from the filter.
//
// The library jumps to the default action (allow) when seccomp_data.arch is
// not the native one, which would let a 64-bit process bypass the list with
// 32-bit compat system calls (int 0x80 on x86_64). The prologue added here
// kills the process instead. x32 calls are refused (ENOSYS) by the library.
//
// bindsListed says the profile lists network.bind ports: the rules for
// profiles without any (listen) are then left out.
func seccompProgram(notify, bindsListed bool) ([]bpf.Instruction, error) {
	native, err := nativeArch()
	if err != nil {
		return nil, err
	}
	if lib, err := arch.GetInfo(""); err != nil || lib.ID != native.ID {
		return nil, fmt.Errorf("seccomp library architecture differs from %s: %v", native.Name, err)
	}
	notified := seccomp.SyscallGroup{Action: seccomp.ActionUserNotify}
	perm := seccomp.SyscallGroup{Action: seccomp.ActionErrno | seccomp.Action(unix.EPERM)}
	nosys := seccomp.SyscallGroup{Action: seccomp.ActionErrno | seccomp.Action(unix.ENOSYS)}
	for _, r := range seccompDenyTable() {
		if r.withoutBind && bindsListed {
			continue
		}
		if _, ok := native.SyscallNames[r.Name]; r.Legacy && !ok {
			continue
		}
		g := &perm
		switch {
		case r.Errno == unix.ENOSYS:
			g = &nosys
		case notify && r.Event == EventNotification:
			g = &notified
		}
		if len(r.conds) == 0 {
			g.Names = append(g.Names, r.Name)
			continue
		}
		for _, c := range r.conds {
			g.NamesWithCondtions = append(g.NamesWithCondtions, seccomp.NameWithConditions{Name: r.Name, Conditions: c})
		}
	}
	policy := seccomp.Policy{DefaultAction: seccomp.ActionAllow, Syscalls: []seccomp.SyscallGroup{notified, perm, nosys}}
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
