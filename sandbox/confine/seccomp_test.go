package confine

import (
	"encoding/binary"
	"runtime"
	"testing"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

const (
	retAllow       = unix.SECCOMP_RET_ALLOW
	retKillProcess = unix.SECCOMP_RET_KILL_PROCESS
	retEPERM       = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	retENOSYS      = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

// seccompData lays out struct seccomp_data the way the kernel's loads see
// it on a little-endian machine, for x/net/bpf's VM, whose 32-bit loads
// are big-endian: each word sits at its native offset, stored big-endian.
func seccompData(nr int, auditArch uint32, args ...uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], uint32(nr))
	binary.BigEndian.PutUint32(b[4:], auditArch)
	for i, a := range args {
		binary.BigEndian.PutUint32(b[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(b[20+8*i:], uint32(a>>32))
	}
	return b
}

func runFilter(t *testing.T, vm *bpf.VM, data []byte) uint32 {
	t.Helper()
	ret, err := vm.Run(data)
	if err != nil {
		t.Fatalf("run filter: %v", err)
	}
	return uint32(ret)
}

func TestSeccompFilterDecisions(t *testing.T) {
	prog, err := seccompProgram(false, false)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("filter does not load in the BPF VM: %v", err)
	}
	native, _ := nativeArch()
	nr := func(name string) int {
		n, ok := native.SyscallNames[name]
		if !ok {
			t.Fatalf("no syscall %s on %s", name, native.Name)
		}
		return n
	}
	id := uint32(native.ID)
	tests := []struct {
		name string
		data []byte
		want uint32
	}{
		{"read is allowed", seccompData(nr("read"), id, 0, 0, 0), retAllow},
		{"bpf", seccompData(nr("bpf"), id), retEPERM},
		{"ptrace", seccompData(nr("ptrace"), id), retEPERM},
		{"io_uring_setup", seccompData(nr("io_uring_setup"), id), retEPERM},
		{"unshare", seccompData(nr("unshare"), id, unix.CLONE_FILES), retEPERM},
		{"clone3", seccompData(nr("clone3"), id), retENOSYS},
		{"clone for a thread", seccompData(nr("clone"), id, unix.CLONE_VM|unix.CLONE_FS|unix.CLONE_FILES|unix.CLONE_SIGHAND|unix.CLONE_THREAD), retAllow},
		{"clone for a process", seccompData(nr("clone"), id, uint64(unix.SIGCHLD)), retAllow},
		{"clone with CLONE_NEWUSER", seccompData(nr("clone"), id, unix.CLONE_NEWUSER|uint64(unix.SIGCHLD)), retEPERM},
		{"clone with CLONE_NEWNET", seccompData(nr("clone"), id, unix.CLONE_NEWNET), retEPERM},
		{"clone with CLONE_NEWNS", seccompData(nr("clone"), id, unix.CLONE_NEWNS), retEPERM},
		{"TCP socket", seccompData(nr("socket"), id, unix.AF_INET, unix.SOCK_STREAM, 0), retAllow},
		{"TCP socket, IPPROTO_TCP", seccompData(nr("socket"), id, unix.AF_INET6, unix.SOCK_STREAM, unix.IPPROTO_TCP), retAllow},
		{"MPTCP socket", seccompData(nr("socket"), id, unix.AF_INET, unix.SOCK_STREAM, ipprotoMPTCP), retEPERM},
		{"MPTCP socket, IPv6", seccompData(nr("socket"), id, unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, ipprotoMPTCP), retEPERM},
		{"MPTCP with junk in the high bits", seccompData(nr("socket"), id, unix.AF_INET, unix.SOCK_STREAM, 0xdead_0000_0000|ipprotoMPTCP), retEPERM},
		{"protocol one bit away from MPTCP", seccompData(nr("socket"), id, unix.AF_INET, unix.SOCK_STREAM, ipprotoMPTCP|1), retAllow},
		{"protocol with a subset of MPTCP's bits", seccompData(nr("socket"), id, unix.AF_INET, unix.SOCK_STREAM, ipprotoMPTCP&^2), retAllow},
		{"AF_UNIX socket", seccompData(nr("socket"), id, unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0), retAllow},
		{"UDP socket", seccompData(nr("socket"), id, unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK, 0), retAllow},
		{"UDP socket, IPv6", seccompData(nr("socket"), id, unix.AF_INET6, unix.SOCK_DGRAM, unix.IPPROTO_UDP), retAllow},
		{"NETLINK_ROUTE socket", seccompData(nr("socket"), id, unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE), retAllow},
		{"NETLINK_AUDIT socket", seccompData(nr("socket"), id, unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT), retEPERM},
		{"NETLINK_SOCK_DIAG socket", seccompData(nr("socket"), id, unix.AF_NETLINK, unix.SOCK_DGRAM, unix.NETLINK_SOCK_DIAG), retEPERM},
		{"NETLINK_KOBJECT_UEVENT socket", seccompData(nr("socket"), id, unix.AF_NETLINK, unix.SOCK_DGRAM, unix.NETLINK_KOBJECT_UEVENT), retEPERM},
		{"NETLINK_ROUTE with junk in the high bits", seccompData(nr("socket"), id, unix.AF_NETLINK, unix.SOCK_RAW, 1<<40), retAllow},
		{"NETLINK_AUDIT with junk in the high bits", seccompData(nr("socket"), id, unix.AF_NETLINK, unix.SOCK_RAW, 1<<40|unix.NETLINK_AUDIT), retEPERM},
		{"AF_PACKET socket", seccompData(nr("socket"), id, unix.AF_PACKET, unix.SOCK_RAW, 0x0300), retEPERM},
		{"AF_ALG socket", seccompData(nr("socket"), id, unix.AF_ALG, unix.SOCK_SEQPACKET, 0), retEPERM},
		{"AF_VSOCK socket", seccompData(nr("socket"), id, unix.AF_VSOCK, unix.SOCK_STREAM, 0), retEPERM},
		{"AF_XDP socket", seccompData(nr("socket"), id, unix.AF_XDP, unix.SOCK_RAW, 0), retEPERM},
		{"AF_KEY socket", seccompData(nr("socket"), id, unix.AF_KEY, unix.SOCK_RAW, 2), retEPERM},
		{"AF_BLUETOOTH socket", seccompData(nr("socket"), id, unix.AF_BLUETOOTH, unix.SOCK_RAW, 0), retEPERM},
		{"AF_UNSPEC socket", seccompData(nr("socket"), id, unix.AF_UNSPEC, unix.SOCK_STREAM, 0), retEPERM},
		{"family with high bits, AF_INET below (the kernel sees AF_INET)", seccompData(nr("socket"), id, 1<<32|unix.AF_INET, unix.SOCK_STREAM, 0), retAllow},
		{"family with high bits, AF_PACKET below", seccompData(nr("socket"), id, 0xffff_ffff_0000_0000|unix.AF_PACKET, unix.SOCK_RAW, 0), retEPERM},
		{"family AF_INET in the high bits only", seccompData(nr("socket"), id, unix.AF_INET<<32, unix.SOCK_STREAM, 0), retEPERM},
		{"raw IPv4 socket", seccompData(nr("socket"), id, unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP), retEPERM},
		{"raw IPv6 socket, with flags", seccompData(nr("socket"), id, unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6), retEPERM},
		{"raw IPv4 socket, junk in the type's high bits", seccompData(nr("socket"), id, unix.AF_INET, 1<<33|unix.SOCK_RAW, 0), retEPERM},
		{"AF_UNIX socketpair", seccompData(nr("socketpair"), id, unix.AF_UNIX, unix.SOCK_STREAM, 0, 0), retAllow},
		{"AF_PACKET socketpair", seccompData(nr("socketpair"), id, unix.AF_PACKET, unix.SOCK_RAW, 0, 0), retEPERM},
		{"AF_VSOCK socketpair", seccompData(nr("socketpair"), id, unix.AF_VSOCK, unix.SOCK_STREAM, 0, 0), retEPERM},
		{"foreign architecture is killed", seccompData(nr("read"), uint32(arch.I386.ID)), retKillProcess},
		{"foreign architecture, unknown number", seccompData(0x7ff, uint32(arch.ARM.ID)), retKillProcess},
	}
	if runtime.GOARCH == "amd64" {
		tests = append(tests, struct {
			name string
			data []byte
			want uint32
		}{"x32 system call", seccompData(nr("read")|0x40000000, id), retENOSYS})
	}
	for _, tt := range tests {
		if got := runFilter(t, vm, tt.data); got != tt.want {
			t.Errorf("%s: filter returns %#x, want %#x", tt.name, got, tt.want)
		}
	}
	// Every unconditional entry of the table is denied with its errno.
	for _, r := range seccompDenyTable() {
		if len(r.conds) > 0 {
			continue
		}
		want := unix.SECCOMP_RET_ERRNO | uint32(r.Errno)
		if got := runFilter(t, vm, seccompData(nr(r.Name), id)); got != want {
			t.Errorf("%s: filter returns %#x, want %#x", r.Name, got, want)
		}
	}
}

// TestSeccompNotifyFilterDecisions: the filter ApplyReporting installs
// hands the calls reported by notification to the supervisor and answers
// the rest itself, exactly as the errno filter does.
func TestSeccompNotifyFilterDecisions(t *testing.T) {
	prog, err := seccompProgram(true, false)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("filter does not load in the BPF VM: %v", err)
	}
	native, _ := nativeArch()
	id := uint32(native.ID)
	nr := func(name string) int { return native.SyscallNames[name] }
	const retNotify = unix.SECCOMP_RET_USER_NOTIF
	tests := []struct {
		name string
		data []byte
		want uint32
	}{
		{"read is allowed", seccompData(nr("read"), id, 0, 0, 0), retAllow},
		{"clone for a thread", seccompData(nr("clone"), id, unix.CLONE_VM|unix.CLONE_FS|unix.CLONE_FILES|unix.CLONE_SIGHAND|unix.CLONE_THREAD), retAllow},
		{"clone with CLONE_NEWUSER", seccompData(nr("clone"), id, unix.CLONE_NEWUSER|uint64(unix.SIGCHLD)), retNotify},
		{"clone3 still answers ENOSYS", seccompData(nr("clone3"), id), retENOSYS},
		{"AF_PACKET socket is the eBPF layer's to report", seccompData(nr("socket"), id, unix.AF_PACKET, unix.SOCK_RAW, 0), retEPERM},
		{"TCP socket", seccompData(nr("socket"), id, unix.AF_INET, unix.SOCK_STREAM, 0), retAllow},
		{"foreign architecture is killed", seccompData(nr("bpf"), uint32(arch.I386.ID)), retKillProcess},
	}
	if runtime.GOARCH == "amd64" {
		tests = append(tests, struct {
			name string
			data []byte
			want uint32
		}{"x32 bpf", seccompData(nr("bpf")|0x40000000, id), retENOSYS})
	}
	for _, tt := range tests {
		if got := runFilter(t, vm, tt.data); got != tt.want {
			t.Errorf("%s: filter returns %#x, want %#x", tt.name, got, tt.want)
		}
	}
	notified, err := NotifiedSyscalls()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range seccompDenyTable() {
		if len(r.conds) > 0 {
			continue
		}
		want := unix.SECCOMP_RET_ERRNO | uint32(r.Errno)
		if r.Event == EventNotification {
			want = retNotify
			if d, ok := notified[nr(r.Name)]; !ok || d.Name != r.Name || d.Errno != r.Errno {
				t.Errorf("%s: NotifiedSyscalls has %+v for its number", r.Name, d)
			}
		}
		if got := runFilter(t, vm, seccompData(nr(r.Name), id)); got != want {
			t.Errorf("%s: filter returns %#x, want %#x", r.Name, got, want)
		}
	}
	for n, d := range notified {
		if d.Event != EventNotification || nr(d.Name) != n || d.Errno != unix.EPERM {
			t.Errorf("NotifiedSyscalls()[%d] = %+v", n, d)
		}
	}
}

func TestSeccompDenyList(t *testing.T) {
	list := SeccompDenyList()
	seen := map[string]int{}
	always := map[string]bool{}
	seenWhen := map[[2]string]bool{}
	for _, d := range list {
		if d.Reason == "" {
			t.Errorf("%s has no reason", d.Name)
		}
		if key := [2]string{d.Name, d.When}; seenWhen[key] {
			t.Errorf("%s (%q) is listed twice", d.Name, d.When)
		}
		seenWhen[[2]string{d.Name, d.When}] = true
		always[d.Name] = always[d.Name] || d.When == ""
		seen[d.Name]++
		for _, a := range []*arch.Info{arch.X86_64, arch.AARCH64} {
			if _, ok := a.SyscallNames[d.Name]; !ok && !(d.Legacy && a == arch.AARCH64) {
				t.Errorf("%s does not exist on %s", d.Name, a.Name)
			}
		}
		if _, ok := arch.AARCH64.SyscallNames[d.Name]; d.Legacy && ok {
			t.Errorf("%s is marked legacy but arm64 has it", d.Name)
		}
	}
	for _, d := range list {
		want := EventNotification
		switch d.Name {
		case "socket", "socketpair":
			want = EventTracepoint // bpf/sockwatch.bpf.c
		case "clone3", "openat2":
			want = EventNone
		}
		if d.Event != want {
			t.Errorf("%s (%q) is reported by %q, want %q", d.Name, d.When, d.Event, want)
		}
	}
	for name, n := range seen {
		if always[name] && n > 1 {
			t.Errorf("%s is denied always and also listed with a condition", name)
		}
	}
	for _, must := range []string{"bpf", "ptrace", "io_uring_setup", "mount", "unshare", "clone", "clone3", "socket", "socketpair", "open_by_handle_at"} {
		if seen[must] == 0 {
			t.Errorf("%s is missing from the deny-list", must)
		}
	}
	list[0].Name = "changed"
	if SeccompDenyList()[0].Name == "changed" {
		t.Error("SeccompDenyList returns shared state")
	}
}

// FuzzLowWordEquals checks the compiled condition against its meaning:
// it matches exactly when the low 32 bits of the argument equal v.
func FuzzLowWordEquals(f *testing.F) {
	f.Add(uint32(ipprotoMPTCP), uint64(ipprotoMPTCP))
	f.Add(uint32(ipprotoMPTCP), uint64(0xffff_ffff_0000_0106))
	f.Add(uint32(0), uint64(1<<40))
	f.Add(uint32(0xffff_ffff), uint64(0xffff_fffe))
	native, err := nativeArch()
	if err != nil {
		f.Skip(err)
	}
	f.Fuzz(func(t *testing.T, v uint32, arg uint64) {
		policy := seccomp.Policy{DefaultAction: seccomp.ActionAllow, Syscalls: []seccomp.SyscallGroup{{
			Action:             seccomp.ActionErrno | seccomp.Action(unix.EPERM),
			NamesWithCondtions: []seccomp.NameWithConditions{{Name: "socket", Conditions: lowWordEquals(2, v)}},
		}}}
		prog, err := policy.Assemble()
		if err != nil {
			t.Fatal(err)
		}
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatal(err)
		}
		got := runFilter(t, vm, seccompData(native.SyscallNames["socket"], uint32(native.ID), 0, 0, arg)) == retEPERM
		if want := uint32(arg) == v; got != want {
			t.Errorf("lowWordEquals(2, %#x) on argument %#x: matched %v, want %v", v, arg, got, want)
		}
	})
}
