package bpf

import (
	"fmt"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// ipprotoUDPLite passes the seccomp deny-list (an AF_INET datagram socket)
// and is refused by cgroup/sock_create (neither TCP nor UDP).
const ipprotoUDPLite = 136

// TestSeccompSocketEvent checks sockets that mcpjail's seccomp deny-list
// refuses (the helper confines itself with sandbox/confine, seccomp
// included): EPERM, and a socket event with layer seccomp and the family,
// although no cgroup hook and no sys_enter tracepoint ever sees the call.
// A socket seccomp lets through and the cgroup hook refuses is reported by
// the hook alone, layer bpf. With network kill the caller dies by SIGKILL.
func TestSeccompSocketEvent(t *testing.T) {
	requireKernel(t)
	requireLandlock(t)
	l := newLoader(t)
	events := collect(l)
	refused := []struct {
		step   watchStep
		target string
	}{
		{watchStep{Op: "socket", Family: unix.AF_PACKET, Type: unix.SOCK_RAW | unix.SOCK_CLOEXEC},
			"socket AF_PACKET/SOCK_RAW"},
		{watchStep{Op: "socket", Family: unix.AF_NETLINK, Type: unix.SOCK_RAW, Proto: unix.NETLINK_AUDIT},
			"socket AF_NETLINK/SOCK_RAW/NETLINK_AUDIT"},
		{watchStep{Op: "socketpair", Family: unix.AF_PACKET, Type: unix.SOCK_DGRAM},
			"socketpair AF_PACKET/SOCK_DGRAM"},
	}
	const hookTarget = "socket AF_INET/SOCK_DGRAM/IPPROTO_UDPLITE"

	t.Run("deny", func(t *testing.T) {
		grp := registerJail(t, l, loopbackPolicy(1))
		req := watchRequest{Confine: confinedPolicy(nil, nil)}
		for _, r := range refused {
			req.Steps = append(req.Steps, r.step)
		}
		req.Steps = append(req.Steps, watchStep{Op: "socket", Family: unix.AF_INET, Type: unix.SOCK_DGRAM, Proto: ipprotoUDPLite})
		run := runWatchHelper(t, grp, req)
		if fmt.Sprint(run.results) != "[EPERM EPERM EPERM EPERM]" {
			t.Fatalf("results %v (signal %v), want EPERM for each", run.results, run.signal)
		}
		for _, r := range refused {
			ev := events.wait(t, string(audit.KindSocket), r.target, run.pid)
			if ev.Verdict != audit.VerdictDeny || ev.Layer != audit.LayerSeccomp || ev.Action != "" ||
				ev.Errno != unix.EPERM || ev.CgroupID != grp.ID() {
				t.Errorf("event %+v: want a deny by seccomp with EPERM, no kill", ev)
			}
		}
		ev := events.wait(t, string(audit.KindSocket), hookTarget, run.pid)
		if ev.Layer != "" || ev.Verdict != audit.VerdictDeny {
			t.Errorf("event %+v: want the cgroup hook's deny (layer bpf)", ev)
		}
		// Records arrive in order: the helper's exit comes after them all.
		events.waitKind(t, audit.KindTaskExit, run.pid)
		for _, ev := range events.eventsOf(run.pid) {
			if ev.Target == hookTarget && ev.Layer == audit.LayerSeccomp {
				t.Errorf("the hook's refusal was also reported as seccomp's: %+v", ev)
			}
		}
		if n := pendingEntries(t, l); n != 0 {
			t.Errorf("%d socket markers left", n)
		}
	})

	t.Run("kill", func(t *testing.T) {
		p := loopbackPolicy(1)
		p.OnViolation.Network = profiles.ActionKill
		grp := registerJail(t, l, p)
		for _, r := range refused {
			run := runWatchHelper(t, grp, watchRequest{Confine: confinedPolicy(nil, nil), Steps: []watchStep{r.step}})
			if run.signal != syscall.SIGKILL {
				t.Fatalf("%s: signal %v, results %v; want killed by SIGKILL", r.target, run.signal, run.results)
			}
			ev := events.wait(t, string(audit.KindSocket), r.target, run.pid)
			if ev.Verdict != audit.VerdictDeny || ev.Layer != audit.LayerSeccomp || ev.Action != audit.ActionKill || ev.Errno != unix.EPERM {
				t.Errorf("event %+v: want a deny by seccomp with action kill", ev)
			}
		}
	})
}
