package bpf

// Limits and values of the watching programs; they must agree with
// bpf/common.h and bpf/watch.h.
const (
	// PathMax is the room for a path in exec and open records: the kernel's
	// PATH_MAX, so a path the kernel accepted is never truncated.
	PathMax = 4096
	// ArgsMax is how many bytes of a new image's argument area (argv,
	// NUL-separated) an exec event carries; longer ones are cut and say so.
	ArgsMax = 2048
	// MaxPending is how many jailed threads can be inside socket or
	// socketpair at once with their marker for sys_exit (sockwatch.bpf.c).
	MaxPending = 16384
)

// Record kinds of the watching programs (enum event_kind).
const (
	eventExec     = 6
	eventOpen     = 7
	eventKill     = 8
	eventSeccomp  = 10
	eventFork     = 11
	eventTaskExit = 12
)

// event_header.action and .layer.
const (
	actionNone    = 0
	actionKill    = 1
	layerBPF      = 0
	layerLandlock = 1
	layerSeccomp  = 2
)

// jail.flags bits beyond jailKillOnNetwork. The kernel acts on exec; the
// file bit is recorded, user space decides (DeniedByProfile).
const (
	jailKillOnExec = 1 << 1
	jailKillOnFile = 1 << 2
)

// enum watch_syscall.
const (
	scExecve     = 1
	scExecveat   = 2
	scOpenat     = 3
	scOpenat2    = 4
	scOpen       = 5
	scCreat      = 6
	scConnect    = 7
	scSendto     = 8
	scSendmsg    = 9
	scSendmmsg   = 10
	scSocket     = 11
	scSocketpair = 12
)

var syscallNames = map[uint16]string{
	scExecve: "execve", scExecveat: "execveat", scOpenat: "openat", scOpenat2: "openat2",
	scOpen: "open", scCreat: "creat", scConnect: "connect", scSendto: "sendto",
	scSendmsg: "sendmsg", scSendmmsg: "sendmmsg", scSocket: "socket", scSocketpair: "socketpair",
}

func syscallName(sc uint16) string { return lookupName(syscallNames, sc, "syscall ") }
