package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// callAndWaitForDeath calls a tool whose attempt must get the server killed:
// the call may answer or fail as the server dies under it, and the run must
// end with 137.
func callAndWaitForDeath(t *testing.T, h *hostileJail, tool string, args map[string]any) {
	t.Helper()
	pid := h.serverPID(t)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, _ = h.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	// The kernel kills the offending task at once; the rest of the server is
	// killed by mcpjail when the event reaches it, which on a slow machine
	// (the TCG guest) can come after the call returned. Closing stdin before
	// that would let the server exit on its own.
	deadline := time.Now().Add(callTimeout)
	for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if code := h.close(t); code != 137 {
		t.Errorf("exit status %d, want 137 (killed)\nstderr:\n%s", code, h.stderr.String())
	}
}

func findEvent(events []audit.Event, match func(audit.Event) bool) bool {
	for _, e := range events {
		if match(e) {
			return true
		}
	}
	return false
}

// TestExecOutsideTheProfileIsKilled: with exec: kill, a shell the profile
// does not allow is refused by Landlock and its caller is killed in the
// kernel before it can try anything else: the marker the shell would write
// never appears, and the whole server ends.
func TestExecOutsideTheProfileIsKilled(t *testing.T) {
	requireRoot(t)
	w := t.TempDir()
	marker := filepath.Join(w, "out", "marker")
	os.MkdirAll(filepath.Dir(marker), 0o755)
	h := startHostile(t, w, `
filesystem:
  write: ["${WORKDIR}/out"]
  exec: ["${HOSTILE}"]
on_violation: {exec: kill}
`)
	callAndWaitForDeath(t, h, "exec", map[string]any{"path": "/bin/sh", "args": []string{"-c", "touch " + marker}})
	if _, err := os.Stat(marker); err == nil {
		t.Error("the refused shell ran: its marker file exists")
	}
	events := readEvents(t, h.auditLog)
	if !findEvent(events, func(e audit.Event) bool {
		return e.Kind == audit.KindExec && e.Target == "/bin/sh" && e.Verdict == audit.VerdictDeny && e.Layer == audit.LayerLandlock && e.Action == audit.ActionKill
	}) {
		t.Errorf("no exec deny event with action kill for /bin/sh:\n%s", formatEvents(events))
	}
}

// TestReadUnderDenyIsKilled: with file: kill, an open under filesystem.deny
// (inside an allowed parent) is refused and ends the server; an ordinary
// refused open elsewhere would not.
func TestReadUnderDenyIsKilled(t *testing.T) {
	requireRoot(t)
	w := t.TempDir()
	key := writeFile(t, w, "home/.ssh/id_ed25519", "PRIVATE KEY\n", 0o600)
	writeFile(t, w, "home/notes.txt", "notes\n", 0o644)
	h := startHostile(t, w, `
filesystem:
  read: ["${WORKDIR}/home"]
  exec: ["${HOSTILE}"]
  deny: ["${WORKDIR}/home/.ssh"]
on_violation: {file: kill}
`)
	expectDenied(t, h.attempt(t, "read_file", map[string]any{"path": "/etc/shadow"}), "EACCES")
	expectAllowed(t, h.attempt(t, "read_file", map[string]any{"path": filepath.Join(w, "home", "notes.txt")}))
	callAndWaitForDeath(t, h, "read_file", map[string]any{"path": key})
	events := readEvents(t, h.auditLog)
	if !findEvent(events, func(e audit.Event) bool {
		return e.Kind == audit.KindOpen && e.Target == key && e.Verdict == audit.VerdictDeny && e.Action == audit.ActionKill
	}) || !findEvent(events, func(e audit.Event) bool { return e.Kind == audit.KindKill }) {
		t.Errorf("want an open deny with action kill for %s and a kill event:\n%s", key, formatEvents(events))
	}
}

// TestSocketKindsOutsideTheProfileAreRefused: packet, raw, non-route netlink
// and MPTCP sockets are refused with EPERM; the netlink route socket Node
// uses still opens.
func TestSocketKindsOutsideTheProfileAreRefused(t *testing.T) {
	requireRoot(t)
	h := startHostile(t, t.TempDir(), networkProfile(1, "deny"))
	for _, c := range []struct {
		name                  string
		family, typ, protocol int
	}{
		{"AF_PACKET", 17, 3, 0},
		{"AF_INET SOCK_RAW", 2, 3, 1},
		{"AF_NETLINK NETLINK_AUDIT", 16, 3, 9},
		{"AF_INET IPPROTO_MPTCP", 2, 1, 262},
	} {
		t.Run(c.name, func(t *testing.T) {
			expectDenied(t, h.attempt(t, "socket", map[string]any{"family": c.family, "type": c.typ, "protocol": c.protocol}), "EPERM")
		})
	}
	t.Run("AF_NETLINK NETLINK_ROUTE", func(t *testing.T) {
		expectAllowed(t, h.attempt(t, "socket", map[string]any{"family": 16, "type": 3, "protocol": 0}))
	})
}

// TestTwoJailsKeepTheirOwnRules runs two servers at once whose profiles allow
// the same port on different loopback addresses: Landlock (ports only)
// lets both through, so each refusal here is the eBPF layer applying the
// right jail's address rules.
func TestTwoJailsKeepTheirOwnRules(t *testing.T) {
	requireRoot(t)
	a := listenLoopback(t)
	// The same port on another loopback address.
	b := listenCounting(t, "tcp", fmt.Sprintf("127.0.0.2:%d", a.port()))
	profile := func(addr string) string {
		return fmt.Sprintf(`
filesystem:
  exec: ["${HOSTILE}"]
network:
  egress:
    - cidr: %s/32
      ports: [%d]
on_violation: {network: deny}
`, addr, a.port())
	}
	ja := startHostile(t, t.TempDir(), profile("127.0.0.1"))
	jb := startHostile(t, t.TempDir(), profile("127.0.0.2"))
	expectAllowed(t, ja.attempt(t, "tcp_connect", map[string]any{"addr": a.Addr().String()}))
	expectDenied(t, ja.attempt(t, "tcp_connect", map[string]any{"addr": b.Addr().String()}), "EPERM")
	expectAllowed(t, jb.attempt(t, "tcp_connect", map[string]any{"addr": b.Addr().String()}))
	expectDenied(t, jb.attempt(t, "tcp_connect", map[string]any{"addr": a.Addr().String()}), "EPERM")
	if a.accepted.Load() != 1 || b.accepted.Load() != 1 {
		t.Errorf("accepted %d and %d connections, want 1 each", a.accepted.Load(), b.accepted.Load())
	}
}
