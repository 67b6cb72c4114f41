package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/cgroup"
)

// registerJail registers p for a new cgroup, unregistered when the test ends.
func registerJail(t *testing.T, l *Loader, p *profiles.Policy) *cgroup.Group {
	t.Helper()
	grp := newGroup(t)
	j, err := l.Register(grp.ID(), grp.V2Path(), p)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return grp
}

// pendingEntries counts the socket markers (mcpjail_pending) still in the kernel.
func pendingEntries(t *testing.T, l *Loader) int {
	t.Helper()
	n := 0
	var k uint32
	var v execPending
	it := l.watch.exec.McpjailPending.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// eventsOf returns the events of pid collected so far.
func (c *collector) eventsOf(pid int) []Event {
	c.follow()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Event
	for _, ev := range c.events {
		if ev.PID == pid {
			out = append(out, ev)
		}
	}
	return out
}

// TestExecKill checks the refused exec: with exec kill the caller dies by
// SIGKILL before the shell can write its marker; with exec deny it lives on
// and sees EACCES. Both produce a deny event with the path.
func TestExecKill(t *testing.T) {
	requireKernel(t)
	requireLandlock(t)
	dir := t.TempDir()
	l := newLoader(t)
	events := collect(l)
	for _, tc := range []struct {
		action profiles.Action
		kill   bool
	}{{profiles.ActionKill, true}, {profiles.ActionDeny, false}} {
		t.Run(string(tc.action), func(t *testing.T) {
			marker := filepath.Join(dir, "marker-"+string(tc.action))
			p := loopbackPolicy(1)
			p.OnViolation.Exec = tc.action
			grp := registerJail(t, l, p)
			run := runWatchHelper(t, grp, watchRequest{
				Confine: confinedPolicy([]string{dir}, nil),
				Steps:   []watchStep{{Op: "exec", Path: "/bin/sh", Args: []string{"sh", "-c", "touch " + marker}}},
			})
			if tc.kill && run.signal != syscall.SIGKILL {
				t.Fatalf("helper: signal %v, results %v; want killed by SIGKILL", run.signal, run.results)
			}
			if !tc.kill && (run.signal != 0 || run.results[0] != "EACCES") {
				t.Fatalf("helper: signal %v, results %v; want EACCES and no signal", run.signal, run.results)
			}
			if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the refused shell ran: marker %s: %v", marker, err)
			}
			ev := events.wait(t, string(audit.KindExec), "/bin/sh", run.pid)
			wantAction := audit.Action("")
			if tc.kill {
				wantAction = audit.ActionKill
			}
			if ev.Verdict != audit.VerdictDeny || ev.Layer != audit.LayerLandlock || ev.Action != wantAction ||
				ev.Errno != unix.EACCES || ev.CgroupID != grp.ID() || ev.Path != "/bin/sh" {
				t.Errorf("event %+v: want deny by landlock, action %q, EACCES, cgroup %d", ev, wantAction, grp.ID())
			}
			if n := pendingEntries(t, l); n != 0 {
				t.Errorf("%d socket markers left after the helper exited", n)
			}
		})
	}
}

// TestExecEvent checks the event of an exec that happens: file name and
// argv, complete when short, cut with the count when long.
func TestExecEvent(t *testing.T) {
	requireKernel(t)
	l := newLoader(t)
	events := collect(l)
	grp := registerJail(t, l, loopbackPolicy(1))
	fd, err := grp.OpenV2()
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	long := strings.Repeat("x", 1500)
	for _, tc := range []struct {
		name      string
		args      []string
		wantArgs  []string
		truncated bool
	}{
		{"short", []string{"true", "hello", "wörld", ""}, []string{"true", "hello", "wörld", ""}, false},
		{"long", []string{"true", long, long, "last"}, []string{"true", long, long[:ArgsMax-len("true")-1-len(long)-1]}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := &execCmd{path: "/bin/true", args: tc.args, cgroupFD: int(fd.Fd())}
			pid := cmd.run(t)
			ev := events.wait(t, string(audit.KindExec), "/bin/true", pid)
			if ev.Verdict != audit.VerdictAllow || ev.Action != "" || ev.Path != "/bin/true" {
				t.Errorf("event %+v: want an allowed exec of /bin/true", ev)
			}
			if !slices.Equal(ev.Args, tc.wantArgs) || ev.ArgsTruncated != tc.truncated || ev.ArgCount != len(tc.args) {
				t.Errorf("args %q (truncated %v, count %d), want %q (truncated %v, count %d)",
					ev.Args, ev.ArgsTruncated, ev.ArgCount, tc.wantArgs, tc.truncated, len(tc.args))
			}
		})
	}
	if n := pendingEntries(t, l); n != 0 {
		t.Errorf("%d socket markers left", n)
	}
}

// TestOpenRefused checks refused opens (absolute, relative) and that an
// allowed open and a process outside any jail produce no event. openat2
// never reaches Landlock in a jail: mcpjail's seccomp filter answers it
// with ENOSYS (its mode is in memory the filter cannot read), and the call
// that never ran makes no open event (TestOpenat2Refused has Landlock alone).
func TestOpenRefused(t *testing.T) {
	requireKernel(t)
	requireLandlock(t)
	allowed, secret := t.TempDir(), t.TempDir()
	for _, d := range []string{allowed, secret} {
		if err := os.WriteFile(filepath.Join(d, "f"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l := newLoader(t)
	events := collect(l)
	p := loopbackPolicy(1)
	p.OnViolation.File = profiles.ActionKill // user space's decision: no kernel kill
	grp := registerJail(t, l, p)
	req := watchRequest{
		Confine: confinedPolicy([]string{allowed}, nil),
		Steps: []watchStep{
			{Op: "open", Path: filepath.Join(allowed, "f"), Flags: unix.O_RDONLY},
			{Op: "open", Path: filepath.Join(secret, "f"), Flags: unix.O_RDONLY | unix.O_CLOEXEC},
			{Op: "chdir", Path: secret},
			{Op: "open", Path: "f", Flags: unix.O_WRONLY | unix.O_APPEND},
			{Op: "openat2", Path: "../" + filepath.Base(secret) + "/f", Flags: unix.O_RDWR},
		},
	}

	// Outside any jail first: refused by Landlock alike, but no event.
	outside := runWatchHelper(t, nil, req)
	if fmt.Sprint(outside.results) != "[ok EACCES ok EACCES ENOSYS]" {
		t.Fatalf("outside the jail: %v (signal %v)", outside.results, outside.signal)
	}
	run := runWatchHelper(t, grp, req)
	if fmt.Sprint(run.results) != "[ok EACCES ok EACCES ENOSYS]" {
		t.Fatalf("in the jail: %v (signal %v); want the same as outside", run.results, run.signal)
	}
	for _, want := range []struct {
		path  string
		flags uint64
	}{
		{filepath.Join(secret, "f"), unix.O_RDONLY | unix.O_CLOEXEC},
		{"f", unix.O_WRONLY | unix.O_APPEND},
	} {
		ev := events.wait(t, string(audit.KindOpen), want.path, run.pid)
		if ev.Verdict != audit.VerdictDeny || ev.Layer != audit.LayerLandlock || ev.Errno != unix.EACCES ||
			ev.DirFD != unix.AT_FDCWD || ev.Flags&^unix.O_LARGEFILE != want.flags || ev.Action != "" || ev.Path != want.path {
			t.Errorf("event %+v: want a Landlock deny of %s with flags %s", ev, want.path, OpenFlagsText(want.flags))
		}
	}
	// Records arrive in order: the jailed helper's were written after
	// anything the outside helper could have caused.
	if got := events.eventsOf(outside.pid); len(got) != 0 {
		t.Errorf("events from a process outside any jail: %+v", got)
	}
	for _, ev := range events.eventsOf(run.pid) {
		if ev.Kind == audit.KindOpen && (strings.HasPrefix(ev.Path, allowed) || strings.HasPrefix(ev.Path, "../")) {
			t.Errorf("event for an allowed open, or for the openat2 seccomp answered: %+v", ev)
		}
	}
	if n := pendingEntries(t, l); n != 0 {
		t.Errorf("%d socket markers left", n)
	}
}

// TestOpenat2Refused checks the openat2 watch, for a jail whose server runs
// without mcpjail's seccomp filter (a kernel without one, --allow-degraded):
// Landlock refuses the call, and the refusal is an open event.
func TestOpenat2Refused(t *testing.T) {
	requireKernel(t)
	requireLandlock(t)
	allowed, secret := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(secret, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := newLoader(t)
	events := collect(l)
	grp := registerJail(t, l, loopbackPolicy(1))
	path := "../" + filepath.Base(secret) + "/f"
	run := runWatchHelper(t, grp, watchRequest{
		LandlockRead: []string{allowed},
		Steps:        []watchStep{{Op: "chdir", Path: secret}, {Op: "openat2", Path: path, Flags: unix.O_RDWR}},
	})
	if fmt.Sprint(run.results) != "[ok EACCES]" {
		t.Fatalf("in the jail, Landlock alone: %v (signal %v)", run.results, run.signal)
	}
	ev := events.wait(t, string(audit.KindOpen), path, run.pid)
	if ev.Verdict != audit.VerdictDeny || ev.Layer != audit.LayerLandlock || ev.Errno != unix.EACCES ||
		ev.Flags&^unix.O_LARGEFILE != unix.O_RDWR || ev.Action != "" {
		t.Errorf("event %+v: want a Landlock deny of %s with O_RDWR", ev, path)
	}
}

// TestOutsideJailNotKilled checks that the exec kill only concerns jails: a
// process outside, refused the same exec, lives on and makes no event.
func TestOutsideJailNotKilled(t *testing.T) {
	requireKernel(t)
	requireLandlock(t)
	l := newLoader(t)
	events := collect(l)
	p := loopbackPolicy(1)
	p.OnViolation.Exec = profiles.ActionKill
	grp := registerJail(t, l, p)
	req := watchRequest{
		Confine: confinedPolicy(nil, nil),
		Steps:   []watchStep{{Op: "exec", Path: "/bin/sh", Args: []string{"sh", "-c", "true"}}},
	}
	outside := runWatchHelper(t, nil, req)
	if outside.signal != 0 || fmt.Sprint(outside.results) != "[EACCES]" {
		t.Fatalf("outside the jail: signal %v, results %v; want EACCES", outside.signal, outside.results)
	}
	inside := runWatchHelper(t, grp, req)
	if inside.signal != syscall.SIGKILL {
		t.Fatalf("in the jail: signal %v, results %v; want SIGKILL", inside.signal, inside.results)
	}
	events.wait(t, string(audit.KindExec), "/bin/sh", inside.pid)
	if got := events.eventsOf(outside.pid); len(got) != 0 {
		t.Errorf("events from a process outside any jail: %+v", got)
	}
}

// TestLandlockConnect checks the connect that the cgroup hook allows and
// Landlock refuses (EACCES): an event with the address, layer Landlock.
func TestLandlockConnect(t *testing.T) {
	requireKernel(t)
	requireLandlock(t)
	both, onlyBPF := listenTCP(t), listenTCP(t)
	l := newLoader(t)
	events := collect(l)
	p := loopbackPolicy(both)
	p.Network.Egress = append(p.Network.Egress, loopbackPolicy(onlyBPF).Network.Egress...)
	grp := registerJail(t, l, p)
	run := runWatchHelper(t, grp, watchRequest{
		Confine: confinedPolicy(nil, nil, both),
		Steps: []watchStep{
			{Op: "connect", Addr: fmt.Sprintf("127.0.0.1:%d", both)},
			{Op: "connect", Addr: fmt.Sprintf("127.0.0.1:%d", onlyBPF)},
		},
	})
	if fmt.Sprint(run.results) != "[ok EACCES]" {
		t.Fatalf("results %v (signal %v), want [ok EACCES]", run.results, run.signal)
	}
	ev := events.wait(t, string(audit.KindConnect), fmt.Sprintf("127.0.0.1:%d/tcp", onlyBPF), run.pid)
	if ev.Verdict != audit.VerdictDeny || ev.Layer != audit.LayerLandlock || ev.Action != "" || ev.CgroupID != grp.ID() {
		t.Errorf("event %+v: want a deny by landlock without kill", ev)
	}
	if n := pendingEntries(t, l); n != 0 {
		t.Errorf("%d socket markers left", n)
	}
}

// TestNetworkKill checks that with network kill, a call a cgroup hook
// refuses (EPERM) gets the caller SIGKILLed, with a kill event after the
// hook's own deny event.
func TestNetworkKill(t *testing.T) {
	requireKernel(t)
	allowed, denied := listenTCP(t), listenTCP(t)
	l := newLoader(t)
	events := collect(l)
	p := loopbackPolicy(allowed)
	p.OnViolation.Network = profiles.ActionKill
	grp := registerJail(t, l, p)
	for _, tc := range []struct {
		step                 watchStep
		denyKind, denyTarget string
		killTarget           string
	}{
		{watchStep{Op: "connect", Addr: fmt.Sprintf("127.0.0.1:%d", denied)},
			string(audit.KindConnect), fmt.Sprintf("127.0.0.1:%d/tcp", denied), "connect"},
		{watchStep{Op: "raw socket"}, string(audit.KindSocket), "socket AF_INET/SOCK_RAW/IPPROTO_ICMP", "socket"},
	} {
		t.Run(tc.killTarget, func(t *testing.T) {
			run := runWatchHelper(t, grp, watchRequest{Steps: []watchStep{
				{Op: "connect", Addr: fmt.Sprintf("127.0.0.1:%d", allowed)}, tc.step,
			}})
			if run.signal != syscall.SIGKILL {
				t.Fatalf("signal %v, results %v; want killed by SIGKILL", run.signal, run.results)
			}
			deny := events.wait(t, tc.denyKind, tc.denyTarget, run.pid)
			kill := events.wait(t, string(audit.KindKill), tc.killTarget, run.pid)
			if deny.Layer != "" || deny.Verdict != audit.VerdictDeny {
				t.Errorf("deny event %+v: want the cgroup hook's deny", deny)
			}
			if kill.Action != audit.ActionKill || kill.Errno != unix.EPERM || kill.CgroupID != grp.ID() || kill.Reason == "" {
				t.Errorf("kill event %+v: want action kill after EPERM for cgroup %d", kill, grp.ID())
			}
		})
	}
	if n := pendingEntries(t, l); n != 0 {
		t.Errorf("%d socket markers left", n)
	}
}
