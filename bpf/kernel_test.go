package bpf

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/cgroup"
)

// listenTCP listens on 127.0.0.1 and returns the port; it accepts and
// closes connections until the test ends.
func listenTCP(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go acceptLoop(ln)
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// listenTCP6 is listenTCP on [::1].
func listenTCP6(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go acceptLoop(ln)
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// listenUnixgram binds a datagram socket at path for the test's duration.
func listenUnixgram(t *testing.T, path string) {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
}

func listenUnix(t *testing.T, path string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go acceptLoop(ln)
}

func acceptLoop(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

func loopbackPolicy(port uint16, unixPaths ...string) *profiles.Policy {
	return &profiles.Policy{
		Name: "bpftest",
		Network: profiles.Network{
			Egress: []profiles.EgressRule{{
				Prefix:   netip.MustParsePrefix("127.0.0.1/32"),
				Ports:    []profiles.PortRange{{Lo: port, Hi: port}},
				Protocol: profiles.ProtoTCP,
			}},
			Unix: unixPaths,
		},
		OnViolation: profiles.OnViolation{Network: profiles.ActionDeny},
	}
}

// TestNetworkEnforcement runs every kind of attempt from a process in a
// registered jail and checks the errno it saw and the event written.
func TestNetworkEnforcement(t *testing.T) {
	requireKernel(t)
	allowed, other, allowed6 := listenTCP(t), listenTCP(t), listenTCP6(t)
	dir, err := os.MkdirTemp("", "mcpjail-bpf-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	listed, unlisted := filepath.Join(dir, "listed.sock"), filepath.Join(dir, "unlisted.sock")
	listedDgram, unlistedDgram := filepath.Join(dir, "listed.dgram"), filepath.Join(dir, "unlisted.dgram")
	listenUnix(t, listed)
	listenUnix(t, unlisted)
	listenUnixgram(t, listedDgram)
	listenUnixgram(t, unlistedDgram)
	abstract := "@" + filepath.Base(dir) // unique, like the directory's name
	listenUnix(t, abstract)

	l := newLoader(t)
	events := collect(l)
	grp := newGroup(t)
	policy := loopbackPolicy(allowed, listed, listedDgram)
	policy.Network.Egress = append(policy.Network.Egress, profiles.EgressRule{
		Prefix: netip.MustParsePrefix("::1/128"), Ports: []profiles.PortRange{{Lo: allowed6, Hi: allowed6}}, Protocol: profiles.ProtoTCP},
		profiles.EgressRule{Prefix: netip.MustParsePrefix("127.0.0.1/32"), Ports: []profiles.PortRange{{Lo: other, Hi: other}}, Protocol: profiles.ProtoUDP})
	jail, err := l.Register(grp.ID(), grp.V2Path(), policy)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	t.Cleanup(func() { _ = jail.Close() })

	cases := []struct {
		name   string
		try    attempt
		errno  string // "ok" or the errno the jailed process must see
		kind   audit.Kind
		target string
	}{
		{"allowed port", attempt{Op: "connect", Addr: fmt.Sprintf("127.0.0.1:%d", allowed)}, "ok", "", ""},
		{"other port", attempt{Op: "connect", Addr: fmt.Sprintf("127.0.0.1:%d", other)}, "EPERM",
			audit.KindConnect, fmt.Sprintf("127.0.0.1:%d/tcp", other)},
		{"other loopback address", attempt{Op: "connect", Addr: fmt.Sprintf("127.0.0.2:%d", allowed)}, "EPERM",
			audit.KindConnect, fmt.Sprintf("127.0.0.2:%d/tcp", allowed)},
		{"IPv6 loopback", attempt{Op: "connect", Addr: fmt.Sprintf("[::1]:%d", allowed)}, "EPERM",
			audit.KindConnect, fmt.Sprintf("[::1]:%d/tcp", allowed)},
		{"IPv6 loopback on its allowed port", attempt{Op: "connect", Addr: fmt.Sprintf("[::1]:%d", allowed6)}, "ok", "", ""},
		{"v4-mapped other address", attempt{Op: "connect", Addr: fmt.Sprintf("[::ffff:127.0.0.2]:%d", allowed)}, "EPERM",
			audit.KindConnect, fmt.Sprintf("[::ffff:127.0.0.2]:%d/tcp", allowed)},
		{"v4-mapped allowed address", attempt{Op: "connect", Addr: fmt.Sprintf("[::ffff:127.0.0.1]:%d", allowed)}, "ok", "", ""},
		{"UDP to a resolver", attempt{Op: "sendto", Addr: "127.0.0.53:53"}, "EPERM", audit.KindSendmsg, "127.0.0.53:53/udp"},
		{"UDP to its allowed port", attempt{Op: "sendto", Addr: fmt.Sprintf("127.0.0.1:%d", other)}, "ok", "", ""},
		// udpv6_sendmsg hands a v4-mapped destination to the IPv4 path, so
		// sendmsg4 sees (and reports) the plain IPv4 address.
		{"UDP to a resolver over IPv6, v4-mapped", attempt{Op: "sendto", Addr: "[::ffff:127.0.0.54]:53"}, "EPERM",
			audit.KindSendmsg, "127.0.0.54:53/udp"},
		{"UDP to its allowed port over IPv6, v4-mapped", attempt{Op: "sendto", Addr: fmt.Sprintf("[::ffff:127.0.0.1]:%d", other)}, "ok", "", ""},
		{"UDP to the allowed TCP port", attempt{Op: "sendto", Addr: fmt.Sprintf("127.0.0.1:%d", allowed)}, "EPERM",
			audit.KindSendmsg, fmt.Sprintf("127.0.0.1:%d/udp", allowed)},
		{"unlisted UNIX socket", attempt{Op: "connect", Addr: unlisted}, "EPERM", audit.KindUnixConnect, unlisted},
		{"listed UNIX socket", attempt{Op: "connect", Addr: listed}, "ok", "", ""},
		// The kernel's name ends at the first NUL; so does the key.
		{"listed UNIX socket, bytes after a NUL", attempt{Op: "connect", Addr: listed + "\x00junk"}, "ok", "", ""},
		{"listed UNIX path plus a byte", attempt{Op: "connect", Addr: listed + "x"}, "EPERM", audit.KindUnixConnect, listed + "x"},
		{"unlisted UNIX datagram", attempt{Op: "sendto", Addr: unlistedDgram}, "EPERM", audit.KindSendmsg, unlistedDgram},
		{"abstract UNIX socket", attempt{Op: "connect", Addr: abstract}, "EPERM", audit.KindUnixConnect, abstract},
		{"listed UNIX datagram", attempt{Op: "sendto", Addr: listedDgram}, "ok", "", ""},
		{"raw IPv4", attempt{Op: "socket", Domain: unix.AF_INET, Type: unix.SOCK_RAW, Proto: unix.IPPROTO_ICMP}, "EPERM",
			audit.KindSocket, "socket AF_INET/SOCK_RAW/IPPROTO_ICMP"},
		{"raw IPv6", attempt{Op: "socket", Domain: unix.AF_INET6, Type: unix.SOCK_RAW, Proto: unix.IPPROTO_ICMPV6}, "EPERM",
			audit.KindSocket, "socket AF_INET6/SOCK_RAW/IPPROTO_ICMPV6"},
		{"MPTCP", attempt{Op: "socket", Domain: unix.AF_INET, Type: unix.SOCK_STREAM, Proto: unix.IPPROTO_MPTCP}, "EPERM",
			audit.KindSocket, "socket AF_INET/SOCK_STREAM/IPPROTO_MPTCP"},
		{"TCP socket", attempt{Op: "socket", Domain: unix.AF_INET6, Type: unix.SOCK_STREAM}, "ok", "", ""},
		{"UDP socket", attempt{Op: "socket", Domain: unix.AF_INET, Type: unix.SOCK_DGRAM}, "ok", "", ""},
		{"NETLINK_ROUTE", attempt{Op: "socket", Domain: unix.AF_NETLINK, Type: unix.SOCK_RAW, Proto: unix.NETLINK_ROUTE}, "ok", "", ""},
		// AF_PACKET and NETLINK_AUDIT are refused by seccomp, not here: the
		// kernel runs cgroup/sock_create for AF_INET and AF_INET6 only.
	}
	if tcpFastOpenClient(t) {
		// sendto with MSG_FASTOPEN connects without connect(2): the cgroup
		// hook sees it (tcp_v4_pre_connect), where Landlock's does not.
		cases = append(cases, []struct {
			name   string
			try    attempt
			errno  string
			kind   audit.Kind
			target string
		}{
			{"TCP Fast Open to another port", attempt{Op: "fastopen", Addr: fmt.Sprintf("127.0.0.1:%d", other)}, "EPERM",
				audit.KindConnect, fmt.Sprintf("127.0.0.1:%d/tcp", other)},
			{"TCP Fast Open to the allowed port", attempt{Op: "fastopen", Addr: fmt.Sprintf("127.0.0.1:%d", allowed)}, "ok", "", ""},
		}...)
	}
	var tries []attempt
	for _, c := range cases {
		tries = append(tries, c.try)
	}
	pid, results := runHelper(t, grp, tries)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if results[i] != c.errno {
				t.Fatalf("%+v: got %s, want %s", c.try, results[i], c.errno)
			}
			if c.kind == "" {
				return
			}
			ev := events.wait(t, string(c.kind), c.target, pid)
			if ev.Verdict != audit.VerdictDeny || ev.CgroupID != grp.ID() || ev.Reason == "" {
				t.Errorf("event %+v: want a deny with a reason for cgroup %d", ev, grp.ID())
			}
		})
	}

	// The same denied attempts from a process outside the jail succeed.
	_, outside := runHelper(t, nil, []attempt{
		{Op: "connect", Addr: fmt.Sprintf("127.0.0.1:%d", other)},
		{Op: "connect", Addr: unlisted},
		{Op: "socket", Domain: unix.AF_INET, Type: unix.SOCK_RAW, Proto: unix.IPPROTO_ICMP},
	})
	for i, r := range outside {
		if r != "ok" {
			t.Errorf("outside the jail, attempt %d: got %s, want ok", i, r)
		}
	}
	if n, err := l.Lost(); err != nil || n != 0 {
		t.Errorf("Lost() = %d, %v; want 0, nil", n, err)
	}
}

// TestTwoJails checks that two jails registered at once each get their own rules.
func TestTwoJails(t *testing.T) {
	requireKernel(t)
	portA, portB := listenTCP(t), listenTCP(t)
	l := newLoader(t)
	events := collect(l)
	grpA, grpB := newGroup(t), newGroup(t)
	for _, r := range []struct {
		grp  *cgroup.Group
		port uint16
	}{{grpA, portA}, {grpB, portB}} {
		j, err := l.Register(r.grp.ID(), r.grp.V2Path(), loopbackPolicy(r.port))
		if err != nil {
			t.Fatalf("Register: %v", err)
		}
		t.Cleanup(func() { _ = j.Close() })
	}
	addr := func(p uint16) string { return fmt.Sprintf("127.0.0.1:%d", p) }
	// Both helpers run at once, each in its own jail.
	type run struct {
		pid     int
		results []string
		err     error
	}
	start := func(grp *cgroup.Group, mine, theirs uint16) <-chan run {
		ch := make(chan run, 1)
		fd, err := grp.OpenV2()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer fd.Close()
			var r run
			r.pid, r.results, r.err = helperRun(int(fd.Fd()), []attempt{{Op: "connect", Addr: addr(mine)}, {Op: "connect", Addr: addr(theirs)}})
			ch <- r
		}()
		return ch
	}
	chA, chB := start(grpA, portA, portB), start(grpB, portB, portA)
	a, b := <-chA, <-chB
	if a.err != nil || b.err != nil {
		t.Fatalf("helpers: %v; %v", a.err, b.err)
	}
	pidA, resA, pidB, resB := a.pid, a.results, b.pid, b.results
	if fmt.Sprint(resA) != "[ok EPERM]" || fmt.Sprint(resB) != "[ok EPERM]" {
		t.Fatalf("jail A got %v, jail B got %v; each want [ok EPERM]", resA, resB)
	}
	if ev := events.wait(t, "connect", addr(portB)+"/tcp", pidA); ev.CgroupID != grpA.ID() {
		t.Errorf("jail A's event carries cgroup %d, want %d", ev.CgroupID, grpA.ID())
	}
	if ev := events.wait(t, "connect", addr(portA)+"/tcp", pidB); ev.CgroupID != grpB.ID() {
		t.Errorf("jail B's event carries cgroup %d, want %d", ev.CgroupID, grpB.ID())
	}
}

// tcpFastOpenClient says the kernel lets clients use TCP Fast Open
// (net.ipv4.tcp_fastopen bit 1, the default); without it sendto with
// MSG_FASTOPEN fails before connecting, so there is nothing to refuse.
func tcpFastOpenClient(t *testing.T) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_fastopen")
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("net.ipv4.tcp_fastopen: %v", err)
	}
	if v&1 == 0 {
		t.Logf("net.ipv4.tcp_fastopen is %d: the kernel refuses TCP Fast Open to clients, no case for it", v)
	}
	return v&1 != 0
}
