package confine

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// seccompOnly installs the deny-list the way Apply does, without the rest.
func seccompOnly() error {
	runtime.LockOSThread()
	if err := setNoNewPrivs(); err != nil {
		return err
	}
	prog, err := seccompProgram(false, false)
	if err != nil {
		return err
	}
	return installSeccomp(prog)
}

// socketProbe calls socket or socketpair with the raw 64-bit arguments in
// arg ("family,type,protocol", any base), so that high bits reach the
// filter as given.
func socketProbe(op, arg string) string {
	fields := strings.Split(arg, ",")
	if len(fields) != 3 {
		return "bad socket probe " + arg
	}
	var a [3]uint64
	for i, f := range fields {
		v, err := strconv.ParseUint(f, 0, 64)
		if err != nil {
			return "bad socket probe " + arg
		}
		a[i] = v
	}
	if op == "socketpair" {
		var fds [2]int32
		_, _, errno := unix.RawSyscall6(unix.SYS_SOCKETPAIR, uintptr(a[0]), uintptr(a[1]), uintptr(a[2]),
			uintptr(unsafe.Pointer(&fds)), 0, 0)
		if errno != 0 {
			return unix.ErrnoName(errno)
		}
		unix.Close(int(fds[0]))
		unix.Close(int(fds[1]))
		return "OK"
	}
	fd, _, errno := unix.RawSyscall(unix.SYS_SOCKET, uintptr(a[0]), uintptr(a[1]), uintptr(a[2]))
	if errno != 0 {
		return unix.ErrnoName(errno)
	}
	unix.Close(int(fd))
	return "OK"
}

type socketCheck struct {
	name, op, arg string
	// filtered is the outcome under the filter; unfiltered as root without it.
	filtered, unfiltered string
}

func socketChecks() []socketCheck {
	sock := func(family, typ, protocol uint64) string { return fmt.Sprintf("%#x,%#x,%#x", family, typ, protocol) }
	return []socketCheck{
		{"AF_PACKET raw", "socket", sock(unix.AF_PACKET, unix.SOCK_RAW, 0), "EPERM", "OK"},
		{"NETLINK_AUDIT", "socket", sock(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT), "EPERM", "OK"},
		{"NETLINK_SOCK_DIAG", "socket", sock(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_SOCK_DIAG), "EPERM", "OK"},
		{"NETLINK_ROUTE", "socket", sock(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE), "OK", "OK"},
		{"TCP", "socket", sock(unix.AF_INET, unix.SOCK_STREAM, 0), "OK", "OK"},
		{"UDP over IPv6", "socket", sock(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK, 0), "OK", "OK"},
		{"AF_UNIX", "socket", sock(unix.AF_UNIX, unix.SOCK_STREAM, 0), "OK", "OK"},
		{"raw IPv4", "socket", sock(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP), "EPERM", "OK"},
		// The kernel takes int arguments: high bits do not change the family.
		{"TCP, high bits in the family", "socket", sock(1<<32|unix.AF_INET, unix.SOCK_STREAM, 0), "OK", "OK"},
		{"AF_PACKET, high bits in the family", "socket", sock(1<<32|unix.AF_PACKET, unix.SOCK_RAW, 0), "EPERM", "OK"},
		{"AF_UNIX pair", "socketpair", sock(unix.AF_UNIX, unix.SOCK_STREAM, 0), "OK", "OK"},
		// The kernel creates the socket, then refuses the pair (EOPNOTSUPP).
		{"AF_PACKET pair", "socketpair", sock(unix.AF_PACKET, unix.SOCK_RAW, 0), "EPERM", "ENOTSUP"},
	}
}

// TestSeccompSocketsOnKernel runs the socket probes under the filter alone
// and, as the control, without it: as root every refused call would
// otherwise succeed (or fail differently), so EPERM comes from the filter.
func TestSeccompSocketsOnKernel(t *testing.T) {
	requireRoot(t)
	checks := socketChecks()
	var probes []probe
	for _, c := range checks {
		probes = append(probes, probe{Op: c.op, Arg: c.arg})
	}
	for _, filtered := range []bool{false, true} {
		req := helperRequest{NoConfine: !filtered, SeccompOnly: filtered, Probes: probes}
		reply := runHelper(t, req)
		if reply.ApplyErr != "" {
			t.Fatalf("install seccomp: %s", reply.ApplyErr)
		}
		for i, c := range checks {
			want := c.unfiltered
			if filtered {
				want = c.filtered
			}
			if reply.Results[i] != want {
				t.Errorf("%s(%s) [%s], filtered %v: got %s, want %s", c.op, c.arg, c.name, filtered, reply.Results[i], want)
			}
		}
	}
}

// TestSeccompSocketsInJail: in the full jail the families a server needs
// still work and the others are refused.
func TestSeccompSocketsInJail(t *testing.T) {
	requireLandlock(t, 6)
	f := newJailFixture(t)
	checks := socketChecks()
	var probes []probe
	for _, c := range checks {
		probes = append(probes, probe{Op: c.op, Arg: c.arg})
	}
	reply := runHelper(t, helperRequest{Spec: Spec{Policy: f.policy}, Probes: probes})
	if reply.ApplyErr != "" {
		t.Fatalf("Apply: %s", reply.ApplyErr)
	}
	for i, c := range checks {
		if reply.Results[i] != c.filtered {
			t.Errorf("%s(%s) [%s] in the jail: got %s, want %s", c.op, c.arg, c.name, reply.Results[i], c.filtered)
		}
	}
}
