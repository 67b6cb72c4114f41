package tests

import (
	"encoding/json"
	"testing"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// seccompSockets are socket kinds that mcpjail's seccomp deny-list refuses
// before any cgroup hook could see them.
var seccompSockets = []struct {
	name                  string
	family, typ, protocol int
	target                string
}{
	{"AF_PACKET", 17, 3, 0, "socket AF_PACKET/SOCK_RAW"},
	{"AF_NETLINK NETLINK_AUDIT", 16, 3, 9, "socket AF_NETLINK/SOCK_RAW/NETLINK_AUDIT"},
}

func seccompDenyEvent(target string, action audit.Action) func(audit.Event) bool {
	return func(e audit.Event) bool {
		return e.Kind == audit.KindSocket && e.Target == target && e.Verdict == audit.VerdictDeny &&
			e.Layer == audit.LayerSeccomp && e.Action == action
	}
}

// TestSeccompSocketRefusalsAreEvents: a socket the seccomp deny-list refuses
// fails with EPERM and is written as a socket event of layer seccomp with
// its family; with network: deny the server lives on.
func TestSeccompSocketRefusalsAreEvents(t *testing.T) {
	requireRoot(t)
	h := startHostile(t, t.TempDir(), networkProfile(1, "deny"))
	for _, c := range seccompSockets {
		t.Run(c.name, func(t *testing.T) {
			expectDenied(t, h.attempt(t, "socket", map[string]any{"family": c.family, "type": c.typ, "protocol": c.protocol}), "EPERM")
			if _, ok := waitForEvent(t, h.auditLog, seccompDenyEvent(c.target, audit.ActionNone)); !ok {
				t.Errorf("no socket deny event of layer seccomp for %s:\n%s", c.target, formatEvents(readEvents(t, h.auditLog)))
			}
		})
	}
	if code := h.close(t); code != 0 {
		t.Errorf("exit status %d, want 0 (on_violation network: deny keeps the server)", code)
	}
}

// TestSeccompSocketRefusalKillsTheServer: with network: kill, a socket the
// seccomp deny-list refuses ends the server with SIGKILL (137), and both the
// refusal and the kill are events.
func TestSeccompSocketRefusalKillsTheServer(t *testing.T) {
	requireRoot(t)
	for _, c := range seccompSockets {
		t.Run(c.name, func(t *testing.T) {
			h := startHostile(t, t.TempDir(), networkProfile(1, "kill"))
			callAndWaitForDeath(t, h, "socket", map[string]any{"family": c.family, "type": c.typ, "protocol": c.protocol})
			events := readEvents(t, h.auditLog)
			if !findEvent(events, seccompDenyEvent(c.target, audit.ActionKill)) ||
				!findEvent(events, func(e audit.Event) bool { return e.Kind == audit.KindKill && e.Layer == audit.LayerSeccomp }) {
				t.Errorf("want a seccomp socket deny with action kill for %s and a kill event:\n%s", c.target, formatEvents(events))
			}
		})
	}
}

// TestForkAndExitAreEvents: a process the server forks is a fork event
// naming the child's pid, and the child's end is a task_exit event with its
// status, distinct from mcpjail's own exit event for the server.
func TestForkAndExitAreEvents(t *testing.T) {
	requireRoot(t)
	h := startHostile(t, t.TempDir(), `
filesystem:
  exec: ["${HOSTILE}"]
`)
	server := h.serverPID(t) // before the fork: the child shares the server's command line
	r := h.attempt(t, "fork_exit", map[string]any{"status": 7})
	expectAllowed(t, r)
	var data struct {
		ExitStatus int `json:"exit_status"`
	}
	if err := json.Unmarshal(r.Data, &data); err != nil || data.ExitStatus != 7 {
		t.Fatalf("fork_exit data %s: %v", r.Data, err)
	}
	fork, ok := waitForEvent(t, h.auditLog, func(e audit.Event) bool {
		return e.Kind == audit.KindFork && e.PID == server && e.ChildPID != 0
	})
	if !ok {
		t.Fatalf("no fork event from the server (pid %d):\n%s", server, formatEvents(readEvents(t, h.auditLog)))
	}
	exit, ok := waitForEvent(t, h.auditLog, func(e audit.Event) bool {
		return e.Kind == audit.KindTaskExit && e.PID == fork.ChildPID
	})
	if !ok {
		t.Fatalf("no task_exit event for the child %d:\n%s", fork.ChildPID, formatEvents(readEvents(t, h.auditLog)))
	}
	if exit.Target != "status 7" || exit.ExitCode == nil || *exit.ExitCode != 7 || exit.Verdict != audit.VerdictAllow || exit.Layer != audit.LayerBPF {
		t.Errorf("child's exit event %+v, want status 7", exit)
	}
	if code := h.close(t); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	events := readEvents(t, h.auditLog)
	if !findEvent(events, func(e audit.Event) bool { return e.Kind == audit.KindTaskExit && e.PID == server }) ||
		len(eventsOf(events, audit.KindExit)) != 1 {
		t.Errorf("want the server's own task_exit and one exit event from mcpjail:\n%s", formatEvents(events))
	}
}
