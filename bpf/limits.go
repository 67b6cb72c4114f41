package bpf

// Limits of the kernel side; they must agree with bpf/common.h.
const (
	// MaxPortRanges is how many port ranges one egress prefix may carry after
	// the rules that cover it are merged. The kernel walks them in a bounded
	// loop; a policy needing more is refused at registration, never truncated.
	MaxPortRanges = 16
	// MaxJails is the capacity of the jails map.
	MaxJails = 1024
	// unixPathMax is sizeof(sun_path).
	unixPathMax = 108
)

// Bits of portRange.Protocols.
const (
	protoTCPBit = 1 << 0
	protoUDPBit = 1 << 1
)

// Values of eventHeader.Kind, Verdict and Reason (enum event_* in common.h).
const (
	eventConnect     = 1
	eventSendmsg     = 2
	eventUnixConnect = 3
	eventUnixSendmsg = 4
	eventSocket      = 5
	// eventAccept: a SYN-ACK from a port not in network.bind (egress.bpf.c),
	// a net_event body with the listener's own address.
	eventAccept = 15

	verdictAllow = 1
	verdictDeny  = 2

	reasonNone         = 0
	reasonNoJail       = 1
	reasonNoPrefix     = 2
	reasonPort         = 3
	reasonProtocol     = 4
	reasonUnixPath     = 5
	reasonUnixAbstract = 6
	reasonUnixUnnamed  = 7
	reasonSocket       = 8
	reasonBindPort     = 15
	reasonIPv6Headers  = 16
)

// jailKillOnNetwork is jail.flags bit 0: the profile's network action is
// kill (netwatch.bpf.c sends SIGKILL on a refused network syscall).
const jailKillOnNetwork = 1 << 0
