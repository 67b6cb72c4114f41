package tests

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// networkProfile allows TCP to one loopback port and nothing else.
func networkProfile(port int, onViolation string) string {
	return fmt.Sprintf(`
filesystem:
  exec: ["${HOSTILE}"]
network:
  egress:
    - cidr: 127.0.0.1/32
      ports: [%d]
on_violation: {network: %s}
`, port, onViolation)
}

// unixListener listens on a socket in a fresh directory and counts accepts.
func unixListener(t *testing.T) (string, *tcpListener) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "service.sock")
	return path, listenCounting(t, "unix", path)
}

// waitForEvent polls the audit log until an event matches or the deadline
// passes; events are written by mcpjail as the kernel reports them.
func waitForEvent(t *testing.T, path string, match func(audit.Event) bool) (audit.Event, bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, e := range readEvents(t, path) {
			if match(e) {
				return e, true
			}
		}
		if time.Now().After(deadline) {
			return audit.Event{}, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func denyEvent(kind audit.Kind, target string) func(audit.Event) bool {
	layer := audit.LayerBPF
	if kind == audit.KindConnect && lsmActive() {
		layer = audit.LayerBPFLSM // security_socket_connect runs before the cgroup hook (lsm_test.go)
	}
	return func(e audit.Event) bool {
		return e.Kind == kind && e.Target == target && e.Verdict == audit.VerdictDeny && e.Layer == layer
	}
}

// TestNetworkOutsideTheProfileIsRefusedByEBPF makes the fixture try every
// way out that the eBPF layer stops, each with the errno the process saw and
// the event mcpjail wrote; the allowed address next to them still works.
func TestNetworkOutsideTheProfileIsRefusedByEBPF(t *testing.T) {
	requireRoot(t)
	allowed := listenLoopback(t)
	sock, unixLn := unixListener(t)
	h := startHostile(t, t.TempDir(), networkProfile(allowed.port(), "deny"))
	p := allowed.port()
	for _, c := range []struct {
		name, tool, addr string
		kind             audit.Kind
		target           string
	}{
		{"another loopback address", "tcp_connect", fmt.Sprintf("127.0.0.2:%d", p), audit.KindConnect, fmt.Sprintf("127.0.0.2:%d/tcp", p)},
		{"IPv6 loopback", "tcp_connect", fmt.Sprintf("[::1]:%d", p), audit.KindConnect, fmt.Sprintf("[::1]:%d/tcp", p)},
		{"UDP to a resolver", "udp_send", "127.0.0.53:53", audit.KindConnect, "127.0.0.53:53/udp"},
		{"UNIX socket not listed", "unix_connect", sock, audit.KindUnixConnect, sock},
	} {
		t.Run(c.name, func(t *testing.T) {
			arg := map[string]any{"addr": c.addr}
			if c.tool == "unix_connect" {
				if kernelLacks(t, readEvents(t, h.auditLog), gapUnixFilter) {
					t.Skipf("kernel %s has no cgroup UNIX socket hooks (Linux 6.7); mcpjail reported the filter missing", suite.kernel.Kernel)
				}
				arg = map[string]any{"path": c.addr}
			}
			expectDenied(t, h.attempt(t, c.tool, arg), "EPERM")
			if _, ok := waitForEvent(t, h.auditLog, denyEvent(c.kind, c.target)); !ok {
				t.Errorf("no %s deny event for %s in the audit log:\n%s", c.kind, c.target, formatEvents(readEvents(t, h.auditLog)))
			}
		})
	}
	t.Run("allowed address and port", func(t *testing.T) {
		expectAllowed(t, h.attempt(t, "tcp_connect", map[string]any{"addr": allowed.Addr().String()}))
	})
	if n := unixLn.accepted.Load(); n != 0 {
		t.Errorf("the unlisted UNIX socket accepted %d connections", n)
	}
	t.Run("the host is not affected", func(t *testing.T) {
		c, err := net.DialTimeout("unix", sock, 5*time.Second)
		if err != nil {
			t.Fatalf("a process outside the jail could not connect to %s: %v", sock, err)
		}
		c.Close()
	})
	if code := h.close(t); code != 0 {
		t.Errorf("exit status %d, want 0 (on_violation network: deny keeps the server)", code)
	}
}

// TestNetworkViolationKillsTheServer: with network: kill, one refused
// connect ends the whole server with SIGKILL, and the kill is an event.
func TestNetworkViolationKillsTheServer(t *testing.T) {
	requireRoot(t)
	allowed := listenLoopback(t)
	h := startHostile(t, t.TempDir(), networkProfile(allowed.port(), "kill"))
	target := fmt.Sprintf("127.0.0.2:%d", allowed.port())
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	// The call may return EPERM or fail as the server dies under it.
	_, _ = h.CallTool(ctx, &mcp.CallToolParams{Name: "tcp_connect", Arguments: map[string]any{"addr": target}})
	if code := h.close(t); code != 137 {
		t.Errorf("exit status %d, want 137 (killed)\nstderr:\n%s", code, h.stderr.String())
	}
	events := readEvents(t, h.auditLog)
	var denied, killed bool
	for _, e := range events {
		denied = denied || (e.Kind == audit.KindConnect && e.Target == target+"/tcp" && e.Action == audit.ActionKill)
		killed = killed || (e.Kind == audit.KindKill && strings.Contains(e.Reason, "network: kill"))
	}
	if !denied || !killed {
		t.Errorf("want a connect deny with action kill and a kill event, got:\n%s", formatEvents(events))
	}
}

// byteSink accepts TCP connections on 127.0.0.1 and counts what arrives.
type byteSink struct {
	net.Listener
	received atomic.Int64
}

func listenSink(t *testing.T) *byteSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &byteSink{Listener: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
					n, err := c.Read(buf)
					s.received.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return s
}

// TestEgressBudgetKillsTheServer: a server that sends more than its
// egress_budget to an allowed sink has its packets dropped at the budget and
// is killed; the sink never receives more than the budget.
func TestEgressBudgetKillsTheServer(t *testing.T) {
	requireRoot(t)
	const budget = 64 << 10
	sink := listenSink(t)
	h := startHostile(t, t.TempDir(), fmt.Sprintf(`
filesystem:
  exec: ["${HOSTILE}"]
network:
  egress:
    - cidr: 127.0.0.1/32
      ports: [%d]
  egress_budget: {bytes: 64Ki, per: 1m}
on_violation: {network: kill}
`, sink.Addr().(*net.TCPAddr).Port))
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	// The call may report a stalled write or fail as the server dies under it.
	_, _ = h.CallTool(ctx, &mcp.CallToolParams{Name: "tcp_stream", Arguments: map[string]any{"addr": sink.Addr().String(), "bytes": 1 << 20}})
	// The kill comes from user space after the budget event (a cgroup_skb
	// program cannot signal), while 1 MiB can fit in the socket's send
	// buffer and the call return first: wait for the kill before closing
	// the session, or a slow machine (the VM under TCG) ends the server
	// normally in between.
	if _, ok := waitForEvent(t, h.auditLog, func(e audit.Event) bool { return e.Kind == audit.KindKill }); !ok {
		t.Errorf("no kill event within the wait; events:\n%s", formatEvents(readEvents(t, h.auditLog)))
	}
	closing := time.Now()
	if code := h.close(t); code != 137 {
		// The client's Close signals mcpjail itself after a grace period:
		// the time says whether that is what happened.
		t.Errorf("exit status %d after %s of closing, want 137 (killed over budget)\nstderr:\n%s", code, time.Since(closing), h.stderr.String())
	}
	if got := sink.received.Load(); got > budget {
		t.Errorf("the sink received %d bytes, more than the %d-byte budget; events:\n%s", got, budget, formatEvents(readEvents(t, h.auditLog)))
	}
	events := readEvents(t, h.auditLog)
	var over, killed bool
	for _, e := range events {
		over = over || (e.Kind == audit.KindEgressBudget && e.Verdict == audit.VerdictDeny && e.Action == audit.ActionKill)
		killed = killed || e.Kind == audit.KindKill
	}
	if !over || !killed {
		t.Errorf("want an egress_budget deny with action kill and a kill event, got:\n%s", formatEvents(events))
	}
}

// TestListenerOutsideBindIsUnreachable: with a network.bind port listed,
// seccomp lets listen(2) through, and a listen without bind gets a port the
// kernel picks, which Landlock's bind rules never see. The eBPF accept rule
// drops the listener's SYN-ACKs: a client outside the jail cannot connect
// and is sent nothing, the answer is an accept event, and with network:
// kill the server dies for it.
func TestListenerOutsideBindIsUnreachable(t *testing.T) {
	requireRoot(t)
	bound, err := net.Listen("tcp4", "127.0.0.1:0") // a port for network.bind; the server never binds it
	if err != nil {
		t.Fatal(err)
	}
	bindPort := bound.Addr().(*net.TCPAddr).Port
	bound.Close()
	h := startHostile(t, t.TempDir(), fmt.Sprintf(`
filesystem:
  exec: ["${HOSTILE}"]
network:
  bind: [%d]
on_violation: {network: kill}
`, bindPort))
	r := h.attempt(t, "tcp_serve", nil)
	expectAllowed(t, r)
	var port int
	if _, err := fmt.Sscanf(r.Detail, "listening on port %d", &port); err != nil || port == 0 {
		t.Fatalf("tcp_serve detail %q: %v", r.Detail, err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		got, _ := io.ReadAll(c)
		c.Close()
		t.Fatalf("connected to the jailed listener on %s (port not in network.bind) and read %q", addr, got)
	}
	t.Logf("dial %s: %v", addr, err)
	ev, ok := waitForEvent(t, h.auditLog, func(e audit.Event) bool { return e.Kind == audit.KindAccept })
	if !ok {
		t.Fatalf("no accept event; events:\n%s", formatEvents(readEvents(t, h.auditLog)))
	}
	if ev.Verdict != audit.VerdictDeny || ev.Target != addr+"/tcp" || ev.Layer != audit.LayerBPF {
		t.Errorf("event %+v: want a bpf deny with target %s/tcp", ev, addr)
	}
	if _, ok := waitForEvent(t, h.auditLog, func(e audit.Event) bool { return e.Kind == audit.KindKill }); !ok {
		t.Errorf("no kill event after the accept; events:\n%s", formatEvents(readEvents(t, h.auditLog)))
	}
	if code := h.close(t); code != 137 {
		t.Errorf("exit status %d, want 137 (killed for the accept)\nstderr:\n%s", code, h.stderr.String())
	}
}
