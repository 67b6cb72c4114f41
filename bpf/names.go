package bpf

import "strconv"

// Socket constants as the kernel records them (x86_64/arm64 values; these
// numbers are the same on every Linux architecture mcpjail builds for).
const (
	afUnix    = 1
	afInet    = 2
	afInet6   = 10
	afNetlink = 16
)

var familyNames = map[uint16]string{
	0: "AF_UNSPEC", afUnix: "AF_UNIX", afInet: "AF_INET", 3: "AF_AX25", 4: "AF_IPX",
	5: "AF_APPLETALK", 9: "AF_X25", afInet6: "AF_INET6", afNetlink: "AF_NETLINK",
	17: "AF_PACKET", 21: "AF_RDS", 24: "AF_PPPOX", 29: "AF_CAN", 30: "AF_TIPC",
	31: "AF_BLUETOOTH", 36: "AF_IEEE802154", 38: "AF_ALG", 40: "AF_VSOCK",
	41: "AF_KCM", 42: "AF_QIPCRTR", 44: "AF_XDP", 45: "AF_MCTP",
}

var sockTypeNames = map[uint16]string{
	1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM", 5: "SOCK_SEQPACKET",
	6: "SOCK_DCCP", 10: "SOCK_PACKET",
}

var ipProtoConsts = map[uint16]string{
	0: "IPPROTO_IP", 1: "IPPROTO_ICMP", 2: "IPPROTO_IGMP", 6: "IPPROTO_TCP", 17: "IPPROTO_UDP",
	33: "IPPROTO_DCCP", 58: "IPPROTO_ICMPV6", 132: "IPPROTO_SCTP", 136: "IPPROTO_UDPLITE",
	255: "IPPROTO_RAW", 262: "IPPROTO_MPTCP",
}

var netlinkNames = map[uint16]string{
	0: "NETLINK_ROUTE", 2: "NETLINK_USERSOCK", 4: "NETLINK_SOCK_DIAG", 5: "NETLINK_NFLOG",
	6: "NETLINK_XFRM", 7: "NETLINK_SELINUX", 8: "NETLINK_ISCSI", 9: "NETLINK_AUDIT",
	10: "NETLINK_FIB_LOOKUP", 11: "NETLINK_CONNECTOR", 12: "NETLINK_NETFILTER",
	15: "NETLINK_KOBJECT_UEVENT", 16: "NETLINK_GENERIC", 18: "NETLINK_SCSITRANSPORT",
	19: "NETLINK_ECRYPTFS", 20: "NETLINK_RDMA", 21: "NETLINK_CRYPTO",
}

func lookupName(m map[uint16]string, v uint16, unknown string) string {
	if s, ok := m[v]; ok {
		return s
	}
	return unknown + strconv.Itoa(int(v))
}

func familyName(f uint16) string   { return lookupName(familyNames, f, "AF_") }
func sockTypeName(t uint16) string { return lookupName(sockTypeNames, t, "SOCK_") }
func ipProtoConst(p uint16) string { return lookupName(ipProtoConsts, p, "IPPROTO_") }
func netlinkName(p uint16) string  { return lookupName(netlinkNames, p, "NETLINK_") }

// ipProtoName is the short transport name used in address targets.
func ipProtoName(p uint16) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	}
	return "proto" + strconv.Itoa(int(p))
}
