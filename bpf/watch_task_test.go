package bpf

import (
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// waitKind returns the first event of kind from pid.
func (c *collector) waitKind(t *testing.T, kind audit.Kind, pid int) Event {
	t.Helper()
	deadline := time.Now().Add(hangBound)
	for time.Now().Before(deadline) {
		for _, ev := range c.eventsOf(pid) {
			if ev.Kind == kind {
				return ev
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %s event from pid %d; got %+v", kind, pid, c.eventsOf(pid))
	return Event{}
}

// TestForkAndExitEvents checks that a jailed process's forks are reported
// with the child's pid (and its threads are not), that each process's end
// is reported once with its status or signal, and that nothing is reported
// for the same helper outside the jail.
func TestForkAndExitEvents(t *testing.T) {
	requireKernel(t)
	l := newLoader(t)
	events := collect(l)
	grp := registerJail(t, l, loopbackPolicy(1))
	req := watchRequest{Steps: []watchStep{
		{Op: "fork", Status: 7},
		{Op: "fork", Signal: syscall.SIGKILL},
	}}
	outside := runWatchHelper(t, nil, req)
	run := runWatchHelper(t, grp, req)
	if run.signal != 0 || len(run.results) != 2 {
		t.Fatalf("helper: signal %v, results %v", run.signal, run.results)
	}
	children := make([]int, 2)
	for i, r := range run.results {
		pid, err := strconv.Atoi(r)
		if err != nil {
			t.Fatalf("fork %d: %s", i, r)
		}
		children[i] = pid
	}

	for i, want := range []struct {
		target string
		code   int
		sig    syscall.Signal
	}{{"status 7", 7, 0}, {"signal SIGKILL", 128 + 9, syscall.SIGKILL}} {
		ev := events.waitKind(t, audit.KindTaskExit, children[i])
		if ev.Target != want.target || ev.ExitCode != want.code || ev.ExitSignal != want.sig ||
			ev.Verdict != audit.VerdictAllow || ev.CgroupID != grp.ID() {
			t.Errorf("exit event of child %d: %+v, want %s (code %d)", children[i], ev, want.target, want.code)
		}
	}
	// The helper's own end comes after its children's.
	if ev := events.waitKind(t, audit.KindTaskExit, run.pid); ev.Target != "status 0" || ev.ExitCode != 0 {
		t.Errorf("exit event of the helper: %+v, want status 0", ev)
	}
	var forks []int
	for _, ev := range events.eventsOf(run.pid) {
		switch ev.Kind {
		case audit.KindFork:
			if ev.Verdict != audit.VerdictAllow || ev.Layer != "" || ev.Action != "" || ev.CgroupID != grp.ID() {
				t.Errorf("fork event %+v: want an allowed observation of cgroup %d", ev, grp.ID())
			}
			forks = append(forks, ev.ChildPID)
		case audit.KindTaskExit:
			if ev.TID == 0 {
				t.Errorf("exit event without a thread: %+v", ev)
			}
		}
	}
	// The Go runtime started threads in the helper: none of them is a fork.
	if len(forks) != 2 || forks[0] != children[0] || forks[1] != children[1] {
		t.Errorf("fork events name children %v, want exactly %v", forks, children)
	}
	if got := events.eventsOf(outside.pid); len(got) != 0 {
		t.Errorf("events from a process outside any jail: %+v", got)
	}
	if got := events.eventsOf(children[0]); len(got) != 1 {
		t.Errorf("child %d: %d events, want its one exit: %+v", children[0], len(got), got)
	}
}
