// Package confinement probes what a process can apply to itself: the
// Landlock ABI, seccomp filters and their user-space listener, and its
// capabilities. It is apart from package features, which also probes eBPF
// and cgroups, so that the init step (mcpjail-init), which needs only these,
// does not link and initialise cilium/ebpf and containerd/cgroups in each
// run's two init processes.
package confinement
