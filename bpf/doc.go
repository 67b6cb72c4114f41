// Package bpf is mcpjail's eBPF layer: the C programs in this directory
// (compiled by bpf2go into the committed net_bpfel.go/.o; ./generate.sh
// rebuilds them), the loader that attaches them to each jail's cgroup, the
// compilation of a profiles.Policy into map entries, and the decoding of the
// kernel's event records.
//
// Life of the layer: Load once per mcpjail process; Register each jail's
// cgroup with its policy before any process enters it (enforcement is live
// when Register returns); read Events; Jail.Close once the jail's processes
// are gone; Loader.Close at exit.
//
// Network enforcement (net.bpf.c): cgroup/connect4/6 and sendmsg4/6 check
// the destination against network.egress (IPv4-mapped IPv6 against the IPv4
// rules; loopback like any address), cgroup/connect_unix and sendmsg_unix
// the socket path against network.unix, cgroup/sock_create refuses IPv4/IPv6
// sockets other than TCP and UDP (raw, MPTCP, SCTP, ICMP). A refusal is
// EPERM for the caller and an Event. The kernel runs cgroup/sock_create for
// AF_INET and AF_INET6 only: other families (AF_PACKET, AF_NETLINK) are for
// the seccomp layer to refuse.
package bpf

//go:generate ./generate.sh
