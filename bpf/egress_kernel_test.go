package bpf

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/cgroup"
)

// budgetPolicy allows any port on the loopback addresses, with a budget.
func budgetPolicy(bytes uint64, per time.Duration, action profiles.Action) *profiles.Policy {
	return &profiles.Policy{
		Name: "bpftest-budget",
		Network: profiles.Network{
			Egress: []profiles.EgressRule{
				{Prefix: netip.MustParsePrefix("127.0.0.1/32"), Protocol: profiles.ProtoAny},
				{Prefix: netip.MustParsePrefix("::1/128"), Protocol: profiles.ProtoAny},
			},
			EgressBudget: &profiles.Budget{Bytes: bytes, Per: per},
		},
		OnViolation: profiles.OnViolation{Network: action},
	}
}

func registerBudget(t *testing.T, l *Loader, grp *cgroup.Group, p *profiles.Policy) *Jail {
	t.Helper()
	j, err := l.Register(grp.ID(), grp.V2Path(), p)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return j
}

// listenUDP binds a datagram socket on addr ("127.0.0.1:0", "[::1]:0") for
// the test's duration and returns its address.
func listenUDP(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().String()
}

func isBudgetEvent(cgroupID uint64) func(Event) bool {
	return func(ev Event) bool { return ev.Kind == audit.KindEgressBudget && ev.CgroupID == cgroupID }
}

// TestEgressBudgetUDPAccounting checks exactly what is counted: the IP
// packet (IPv4 20 + UDP 8 + payload; IPv6 40 + 8 + payload), on loopback.
// UDP shows each drop as EPERM, so the boundary is visible packet by packet;
// with deny the sender lives on to show that the rest of the window is spent.
func TestEgressBudgetUDPAccounting(t *testing.T) {
	requireKernel(t)
	l := newLoader(t)
	events := collect(l)
	tests := []struct {
		name     string
		listen   string
		packet   uint64 // IP length of a 100-byte datagram
		admitted int    // datagrams that fit
		budget   uint64
	}{
		// 7 fit (896 bytes); the 8th would make 1024.
		{"IPv4", "127.0.0.1:0", 128, 7, 7*128 + 50},
		// A budget met exactly is not exceeded.
		{"IPv6", "[::1]:0", 148, 3, 3 * 148},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := listenUDP(t, tc.listen)
			grp := newGroup(t)
			j := registerBudget(t, l, grp, budgetPolicy(tc.budget, time.Hour, profiles.ActionDeny))
			var steps []egressStep
			for range tc.admitted + 1 {
				steps = append(steps, egressStep{Op: "udp", Addr: dst, Size: 100})
			}
			steps = append(steps, egressStep{Op: "udp", Addr: dst, Size: 1}) // small, but the window is spent
			pid, res := runEgressHelper(t, grp, steps)
			want := strings.Repeat("ok ", tc.admitted) + "EPERM EPERM"
			if got := strings.Join(res, " "); got != want {
				t.Fatalf("datagrams: got %s, want %s", got, want)
			}

			ev := events.waitFor(t, "egress_budget for the jail", isBudgetEvent(grp.ID()))
			wantTarget := fmt.Sprintf("%d bytes in 1h0m0s", tc.budget)
			over := uint64(tc.admitted+1) * tc.packet
			wantReason := fmt.Sprintf("%d bytes counted in the window with a %d-byte packet to %s/udp", over, tc.packet, dst)
			if ev.Target != wantTarget || ev.Action != audit.ActionNone || ev.Verdict != audit.VerdictDeny || ev.PID != pid ||
				!strings.Contains(ev.Reason, wantReason) {
				t.Errorf("event %+v; want target %q, action none, deny, pid %d, reason containing %q",
					ev, wantTarget, pid, wantReason)
			}

			u, err := j.EgressUsage()
			if err != nil {
				t.Fatal(err)
			}
			small := tc.packet - 99 // the 1-byte datagram
			want2 := EgressUsage{Budget: tc.budget, Window: time.Hour, Bytes: over + small, Exceeded: true,
				DroppedPackets: 2, DroppedBytes: tc.packet + small}
			if u != want2 {
				t.Errorf("EgressUsage = %+v, want %+v", u, want2)
			}
		})
	}
}

// TestEgressBudgetKillUDP checks network: kill: the event asks user space
// to kill, and the sender, refused with EPERM, is SIGKILLed by netwatch.bpf.c.
func TestEgressBudgetKillUDP(t *testing.T) {
	requireKernel(t)
	l := newLoader(t)
	events := collect(l)
	dst := listenUDP(t, "127.0.0.1:0")
	grp := newGroup(t)
	j := registerBudget(t, l, grp, budgetPolicy(2*128, time.Hour, profiles.ActionKill))
	pid, res, killed := runEgressHelperMayDie(t, grp, []egressStep{
		{Op: "udp", Addr: dst, Size: 100}, {Op: "udp", Addr: dst, Size: 100}, {Op: "udp", Addr: dst, Size: 100}})
	if !killed {
		t.Fatalf("the sender over its budget was not killed; it saw %v", res)
	}
	ev := events.waitFor(t, "egress_budget for the jail", isBudgetEvent(grp.ID()))
	if ev.Action != audit.ActionKill || ev.PID != pid || ev.Target != "256 bytes in 1h0m0s" {
		t.Errorf("event %+v; want action kill, pid %d, target \"256 bytes in 1h0m0s\"", ev, pid)
	}
	u, err := j.EgressUsage()
	if err != nil {
		t.Fatal(err)
	}
	if want := (EgressUsage{Budget: 256, Window: time.Hour, Bytes: 3 * 128, Exceeded: true, DroppedPackets: 1, DroppedBytes: 128}); u != want {
		t.Errorf("EgressUsage = %+v, want %+v", u, want)
	}
}

// TestEgressBudgetWindow checks that deny makes the budget a rate cap (the
// next window sends again) while kill latches for good. A datagram larger
// than the budget is dropped in any window, so no step depends on timing
// beyond sleeping longer than the window.
func TestEgressBudgetWindow(t *testing.T) {
	requireKernel(t)
	l := newLoader(t)
	dst := listenUDP(t, "127.0.0.1:0")
	const window = 100 * time.Millisecond
	for _, action := range []profiles.Action{profiles.ActionDeny, profiles.ActionKill} {
		t.Run(string(action), func(t *testing.T) {
			grp := newGroup(t)
			j := registerBudget(t, l, grp, budgetPolicy(200, window, action))
			// Two senders one after the other: with kill, the first dies at its EPERM.
			send := func(size int) string {
				_, res, killed := runEgressHelperMayDie(t, grp, []egressStep{{Op: "udp", Addr: dst, Size: size}})
				if killed {
					return "killed"
				}
				return res[0]
			}
			first := send(300) // 328 bytes > 200
			time.Sleep(window + window/2)
			second := send(100) // 128 bytes
			want := "EPERM ok"
			if action == profiles.ActionKill {
				want = "killed killed"
			}
			if got := first + " " + second; got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
			u, err := j.EgressUsage()
			if err != nil {
				t.Fatal(err)
			}
			if want := map[profiles.Action]uint64{profiles.ActionDeny: 1, profiles.ActionKill: 2}[action]; u.DroppedPackets != want {
				t.Errorf("EgressUsage = %+v, want %d dropped packets", u, want)
			}
		})
	}
}

// TestEgressBudgetTCP streams more than the budget to a local sink: the sink
// receives no more than the budget, the sender stalls, the event asks for a
// kill, and a process outside the jail streams to the same sink unhindered.
func TestEgressBudgetTCP(t *testing.T) {
	requireKernel(t)
	const budget, stream = 256 << 10, 1 << 20
	l := newLoader(t)
	events := collect(l)
	sink := newTCPSink(t)
	grp := newGroup(t)
	j := registerBudget(t, l, grp, budgetPolicy(budget, 10*time.Second, profiles.ActionKill))

	// With kill the latch never resets, so the write can never complete:
	// the deadline only bounds how long the helper keeps trying.
	_, res := runEgressHelper(t, grp, []egressStep{{Op: "tcp", Addr: sink.addr, Size: stream, Wait: 2 * time.Second}})
	if res[0] != "short" {
		t.Fatalf("jailed stream of %d bytes over a %d-byte budget: got %s, want short", stream, budget, res[0])
	}
	ev := events.waitFor(t, "egress_budget for the jail", isBudgetEvent(grp.ID()))
	if ev.Action != audit.ActionKill || ev.Verdict != audit.VerdictDeny || ev.Target != "262144 bytes in 10s" {
		t.Errorf("event %+v: want a deny with action kill, target \"262144 bytes in 10s\"", ev)
	}
	// The sender is latched: closing the sink's side ends what can arrive.
	c := sink.conn(t, 0)
	c.c.Close()
	got := c.waitEOF(t)
	if got == 0 || got > budget {
		t.Errorf("the sink received %d bytes; want some and at most the %d-byte budget", got, budget)
	}
	u, err := j.EgressUsage()
	if err != nil {
		t.Fatal(err)
	}
	if !u.Exceeded || u.DroppedPackets == 0 {
		t.Errorf("EgressUsage = %+v; want exceeded with drops", u)
	}
	t.Logf("sink received %d of %d bytes; usage %+v", got, stream, u)

	if _, res := runEgressHelper(t, nil, []egressStep{{Op: "tcp", Addr: sink.addr, Size: stream, Wait: hangBound}}); res[0] != "ok" {
		t.Fatalf("stream from outside the jail: got %s, want ok", res[0])
	}
	if got := sink.conn(t, 1).waitEOF(t); got != stream {
		t.Errorf("the sink received %d bytes from outside the jail, want %d", got, stream)
	}
}

// TestEgressBudgetNotExceeded checks that a jail under its budget sends
// everything.
func TestEgressBudgetNotExceeded(t *testing.T) {
	requireKernel(t)
	const budget, stream = 4 << 20, 1 << 20
	l := newLoader(t)
	sink := newTCPSink(t)
	grp := newGroup(t)
	j := registerBudget(t, l, grp, budgetPolicy(budget, time.Hour, profiles.ActionKill))
	if _, res := runEgressHelper(t, grp, []egressStep{{Op: "tcp", Addr: sink.addr, Size: stream, Wait: hangBound}}); res[0] != "ok" {
		t.Fatalf("stream under the budget: got %s, want ok", res[0])
	}
	if got := sink.conn(t, 0).waitEOF(t); got != stream {
		t.Errorf("the sink received %d bytes, want %d", got, stream)
	}
	u, err := j.EgressUsage()
	if err != nil {
		t.Fatal(err)
	}
	// Counted bytes include the IP and TCP headers of every packet.
	if u.Exceeded || u.DroppedPackets != 0 || u.Bytes <= stream || u.Bytes > budget {
		t.Errorf("EgressUsage = %+v; want no drop and between %d and %d bytes counted", u, stream, budget)
	}
}

// budgetEntries counts the entries of the budget map.
func budgetEntries(t *testing.T, l *Loader) int {
	t.Helper()
	n := 0
	it := l.budget.Budgets.Iterate()
	var k uint64
	var v egressBudgetState
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatalf("iterate budget map: %v", err)
	}
	return n
}

// egressAttached counts the cgroup_skb egress programs attached to dir that
// are prog.
func egressAttached(t *testing.T, dir string, prog *ebpf.Program) int {
	t.Helper()
	return timesAttached(t, dir, prog, ebpf.AttachCGroupInetEgress)
}

// timesAttached counts the attachments of prog directly to the cgroup
// directory dir as at.
func timesAttached(t *testing.T, dir string, prog *ebpf.Program, at ebpf.AttachType) int {
	t.Helper()
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: at})
	if err != nil {
		t.Fatalf("query %s programs on %s: %v", at, dir, err)
	}
	n := 0
	for _, p := range res.Programs {
		if p.ID == id {
			n++
		}
	}
	return n
}

// TestEgressBudgetLifecycle checks that the program and state exist only
// for a jail with a budget, that Jail.Close removes both, that a refused
// budget leaves nothing, and that Loader.Close unloads the program and map.
func TestEgressBudgetLifecycle(t *testing.T) {
	requireKernel(t)
	l := newLoader(t)
	grp := newGroup(t)
	progInfo, err := l.budget.Program.Info()
	if err != nil {
		t.Fatal(err)
	}
	progID, _ := progInfo.ID()
	mapInfo, err := l.budget.Budgets.Info()
	if err != nil {
		t.Fatal(err)
	}
	mapID, _ := mapInfo.ID()

	bad := budgetPolicy(100, time.Microsecond, profiles.ActionKill)
	if _, err := l.Register(grp.ID(), grp.V2Path(), bad); err == nil || !strings.Contains(err.Error(), "egress_budget") {
		t.Fatalf("Register with a 1µs window: %v, want an egress_budget error", err)
	}
	if n, m, a := budgetEntries(t, l), entries(t, l), egressAttached(t, grp.V2Path(), l.budget.Program)+egressAttached(t, grp.V2Path(), l.budget.Accept)+attachedTo(t, grp.V2Path()); n+m+a != 0 {
		t.Fatalf("after a refused budget: %d budget entries, %d rule entries, %d programs attached", n, m, a)
	}

	plain, err := l.Register(grp.ID(), grp.V2Path(), loopbackPolicy(80))
	if err != nil {
		t.Fatalf("Register without a budget: %v", err)
	}
	if n, a := budgetEntries(t, l), egressAttached(t, grp.V2Path(), l.budget.Program); n != 0 || a != 0 {
		t.Errorf("no budget: %d budget entries and %d egress programs, want none", n, a)
	}
	if a := egressAttached(t, grp.V2Path(), l.budget.Accept); a != 1 {
		t.Errorf("no budget: the accept rule is attached %d times, want once (every jail has it)", a)
	}
	if _, err := plain.EgressUsage(); err == nil {
		t.Error("EgressUsage of a jail without a budget succeeded")
	}
	if err := plain.Close(); err != nil {
		t.Fatal(err)
	}

	j, err := l.Register(grp.ID(), grp.V2Path(), budgetPolicy(1<<20, time.Minute, profiles.ActionKill))
	if err != nil {
		t.Fatalf("Register with a budget: %v", err)
	}
	if n, a := budgetEntries(t, l), egressAttached(t, grp.V2Path(), l.budget.Program); n != 1 || a != 1 {
		t.Fatalf("with a budget: %d budget entries and %d egress programs, want 1 and 1", n, a)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("Jail.Close: %v", err)
	}
	if n, a := budgetEntries(t, l), egressAttached(t, grp.V2Path(), l.budget.Program)+egressAttached(t, grp.V2Path(), l.budget.Accept); n != 0 || a != 0 {
		t.Errorf("after Close: %d budget entries and %d egress programs, want none", n, a)
	}

	if err := l.Close(); err != nil {
		t.Fatalf("Loader.Close: %v", err)
	}
	waitGone(t, fmt.Sprintf("egress program %d", progID), func() (io.Closer, error) { return ebpf.NewProgramFromID(progID) })
	waitGone(t, fmt.Sprintf("budget map %d", mapID), func() (io.Closer, error) { return ebpf.NewMapFromID(mapID) })
}

// freePort returns a TCP port free on 127.0.0.1 and ::1 just now.
func freePort(t *testing.T) uint16 {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := uint16(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
		if ln6, err := net.Listen("tcp6", fmt.Sprintf("[::1]:%d", port)); err == nil {
			ln6.Close()
			return port
		}
	}
	t.Fatal("no TCP port free on both loopback addresses")
	return 0
}

// readFrom dials addr from outside the jail and reads what the server sends.
func readFrom(addr string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	b, err := io.ReadAll(c)
	return string(b), err
}

// TestAcceptOnlyOnBindPorts: a jailed listener answers connections only on
// network.bind's ports. On any other port (one the kernel picked for a
// listen without bind, which Landlock never checks) the SYN-ACK is dropped,
// so nobody outside can connect to it and be sent data, IPv4 or IPv6; each
// answer is an accept event.
func TestAcceptOnlyOnBindPorts(t *testing.T) {
	requireKernel(t)
	l := newLoader(t)
	events := collect(l)
	grp := newGroup(t)
	allowed, other := freePort(t), freePort(t)
	for allowed == other {
		other = freePort(t)
	}
	p := &profiles.Policy{Name: "bpftest-accept", Network: profiles.Network{Bind: []profiles.PortRange{{Lo: allowed, Hi: allowed}}}}
	j, err := l.Register(grp.ID(), grp.V2Path(), p)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	t.Cleanup(func() { _ = j.Close() })

	a4 := fmt.Sprintf("127.0.0.1:%d", allowed)
	o4, o6 := fmt.Sprintf("127.0.0.1:%d", other), fmt.Sprintf("[::1]:%d", other)
	done := make(chan []string, 1)
	go func() {
		_, res := runEgressHelper(t, grp, []egressStep{
			{Op: "serve", Addr: a4}, {Op: "serve", Addr: o4}, {Op: "serve", Addr: o6},
			{Op: "sleep", Wait: 5 * time.Second},
		})
		done <- res
	}()
	// The allowed listener answering shows that all three are up.
	deadline := time.Now().Add(hangBound)
	for {
		got, err := readFrom(a4, time.Second)
		if err == nil && got == "hostile" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the listener on network.bind port %d never answered: %q, %v", allowed, got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, addr := range []string{o4, o6} {
		if got, err := readFrom(addr, time.Second); err == nil || got != "" {
			t.Errorf("connected to the jail's listener on %s, outside network.bind: read %q, %v", addr, got, err)
		} else {
			t.Logf("%s: %v", addr, err)
		}
		want := addr + "/tcp"
		ev := events.waitFor(t, "accept event for "+addr, func(ev Event) bool {
			return ev.Kind == audit.KindAccept && ev.CgroupID == grp.ID() && ev.Target == want
		})
		if ev.Verdict != audit.VerdictDeny || !strings.Contains(ev.Reason, "network.bind") {
			t.Errorf("event %+v: want a deny naming network.bind", ev)
		}
	}
	if res := <-done; res[0] != "ok" || res[1] != "ok" || res[2] != "ok" {
		t.Fatalf("helper listeners: %v", res)
	}
	// Outside the jail the same port answers: the rule is the jail's alone.
	ln, err := net.Listen("tcp4", o4)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	if _, err := readFrom(o4, time.Second); err != nil {
		t.Errorf("a listener outside the jail on port %d: %v", other, err)
	}
}

// TestAcceptWithoutBindRules: a jail whose policy lists no network.bind
// port (no entry in the bind map) answers no connection at all.
func TestAcceptWithoutBindRules(t *testing.T) {
	requireKernel(t)
	l := newLoader(t)
	events := collect(l)
	grp := newGroup(t)
	j, err := l.Register(grp.ID(), grp.V2Path(), &profiles.Policy{Name: "bpftest-nobind"})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	t.Cleanup(func() { _ = j.Close() })
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	done := make(chan []string, 1)
	go func() {
		_, res := runEgressHelper(t, grp, []egressStep{{Op: "serve", Addr: addr}, {Op: "sleep", Wait: 3 * time.Second}})
		done <- res
	}()
	// The listener is up once the accept event names it; until then a dial
	// is refused outright (no listener) rather than left unanswered.
	deadline := time.Now().Add(hangBound)
	for {
		got, err := readFrom(addr, time.Second)
		if err == nil || got != "" {
			t.Fatalf("connected to a jail without network.bind rules on %s: read %q, %v", addr, got, err)
		}
		if events.count(func(ev Event) bool {
			return ev.Kind == audit.KindAccept && ev.CgroupID == grp.ID() && ev.Target == addr+"/tcp"
		}) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no accept event for %s; last dial: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if res := <-done; res[0] != "ok" {
		t.Fatalf("helper listener: %v", res)
	}
}
