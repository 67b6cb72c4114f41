// Package bpf is mcpjail's eBPF layer: the C programs in this directory
// (compiled by bpf2go into the committed net_bpfel.go/.o; ./generate.sh
// rebuilds them), the loader that attaches them to each jail's cgroup, the
// compilation of a profiles.Policy into map entries, and the decoding of the
// kernel's event records.
//
// Life of the layer: Load once per mcpjail process; Register each jail's
// cgroup with its policy before any process enters it (enforcement is live
// when Register returns); read the jail's Events (Loader.Events carries the
// events no jail claims); Jail.Close once the jail's processes are gone;
// Loader.Close at exit.
//
// The daemon uses LoadPinned instead (pin.go): programs, maps, global
// links and every jail's links are pinned under a bpffs directory, so that
// jails stay enforced when the daemon dies, and the next LoadPinned adopts
// them (Loader.Jails). Cleanup removes it all.
//
// Network enforcement (net.bpf.c): cgroup/connect4/6 and sendmsg4/6 check
// the destination against network.egress (IPv4-mapped IPv6 against the IPv4
// rules; loopback like any address), cgroup/connect_unix and sendmsg_unix
// the socket path against network.unix, cgroup/sock_create refuses IPv4/IPv6
// sockets other than TCP and UDP (raw, MPTCP, SCTP, ICMP). A refusal is
// EPERM for the caller and an Event. The kernel runs cgroup/sock_create for
// AF_INET and AF_INET6 only: other families (AF_PACKET, AF_NETLINK) are for
// the seccomp layer to refuse.
//
// Egress budget (egress.bpf.c): for a policy with network.egress_budget, a
// cgroup_skb/egress program counts the IP bytes the jail's sockets send in
// fixed windows and drops every packet over the budget; one Event (kind
// egress_budget) reports it, with Action kill when on_violation.network is
// kill, for the caller to kill the jail's cgroup. Jail.EgressUsage reads the
// counters.
//
// Watching and kill (exec.bpf.c, file.bpf.c, netwatch.bpf.c,
// sockwatch.bpf.c, task.bpf.c; watch.go): syscall tracepoints and tp_btf
// programs, attached once per Loader (they are global; each returns at once
// for a task whose cgroup is not a registered jail). Events: exec with the
// file and argv (ArgsMax bytes); fork (the child's pid) and the end of each
// process (its status or signal); an exec, open or TCP connect the kernel
// refused with EACCES/EPERM, with the path or address and layer Landlock; a
// socket or socketpair the seccomp deny-list refused, with its arguments
// and layer seccomp. With on_violation.exec kill, a
// refused exec gets the caller SIGKILLed at sys_exit; with network kill, a
// network syscall failing with EPERM (or a Landlock-refused connect) does,
// and the Event has Action kill: the caller then kills the jail's cgroup.
// on_violation.file kill is user space's: DeniedByProfile on a refused open.
// Load mounts tracefs when it is missing, and logs that it did.
package bpf

//go:generate ./generate.sh
