package tests

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox"
	"github.com/mcpjail/mcpjail/sandbox/cgroup"
	"github.com/mcpjail/mcpjail/sandbox/daemon/api"
	"github.com/mcpjail/mcpjail/tests/internal/e2e"
)

// TestDaemonRefusesToJailAJailedProcess: a process inside a jail (here a
// child born in a jail's cgroup, as a server's child would be) is never
// moved into a new jail, which would take it out of its own jail's limits
// and eBPF policy; the same request for a child outside every jail works.
func TestDaemonRefusesToJailAJailedProcess(t *testing.T) {
	d := startDaemon(t, listenLoopback(t).port(), "", nil)
	jail := outerJail(t)

	for _, tc := range []struct {
		name    string
		inJail  bool
		refused bool
	}{{"child in a jail", true, true}, {"child outside every jail", false, false}} {
		t.Run(tc.name, func(t *testing.T) {
			child := exec.Command("sleep", "30")
			pidfd := -1
			attr := &syscall.SysProcAttr{PidFD: &pidfd}
			if tc.inJail {
				fd, err := jail.OpenV2()
				if err != nil {
					t.Fatal(err)
				}
				defer fd.Close()
				attr.UseCgroupFD, attr.CgroupFD = true, int(fd.Fd())
			}
			child.SysProcAttr = attr
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
			defer syscall.Close(pidfd)

			c, err := rawPrepare(t, d, sandbox.RemoteRequest{Profile: "e2e-deny"})
			if err != nil {
				t.Fatalf("prepare: %v", err)
			}
			err = c.Attach(pidfd)
			if tc.refused {
				if err == nil || !strings.Contains(err.Error(), "a jailed process cannot start a jail") {
					t.Fatalf("attach of a jailed child: %v, want a refusal", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("attach of a child outside every jail: %v", err)
			}
			if err := c.Release(); err != nil {
				t.Errorf("release: %v", err)
			}
		})
	}
}

// TestDaemonRefusesAJailedClient: a client inside a jail (here `mcpjail run`
// born in a jail's cgroup, as a jailed server's child would be if its
// profile let it reach the socket) is refused at prepare, before the daemon
// builds anything for it.
func TestDaemonRefusesAJailedClient(t *testing.T) {
	d := startDaemon(t, listenLoopback(t).port(), "", nil)
	jail := outerJail(t)
	fd, err := jail.OpenV2()
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	cmd := exec.CommandContext(withTimeout(t, time.Minute), suite.mcpjail, "run", "--daemon", "always", "--socket", d.socket, "--profile", "e2e-deny", "--", suite.hostile, "attempt", "self")
	cmd.Env = defaultClientEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(fd.Fd())}
	out, err := cmd.CombinedOutput()
	code, _ := e2e.ExitCode(err)
	if code != 125 || !strings.Contains(string(out), "a jailed process cannot start a jail") {
		t.Errorf("mcpjail run from inside a jail: exit %d, want 125 and a refusal\n%s", code, out)
	}
	if st, err := d.status(); err != nil || len(st.Jails) != 0 {
		t.Errorf("the daemon holds jails after refusing a jailed client: %v (%v)", st, err)
	}
	// Refused at prepare, the first request: nothing was built (an attach
	// refusal would come after the jail was).
	if log := d.stderr.String(); !strings.Contains(log, `msg="refused run"`) || strings.Contains(log, `msg="jail built"`) {
		t.Errorf("the daemon did not refuse the jailed client before building its jail:\n%s", log)
	}
}

// outerJail creates a jail's cgroup (as a standalone run makes them),
// removed when the test ends.
func outerJail(t *testing.T) *cgroup.Group {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	jail, _, err := cgroup.Create("e2e-outer-"+hex.EncodeToString(b), profiles.Limits{})
	if err != nil {
		t.Fatalf("create the outer jail's cgroup: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := jail.Remove(ctx); err != nil {
			t.Errorf("remove the outer jail's cgroup: %v", err)
		}
	})
	return jail
}

// TestDaemonChecksTheServerName: the daemon takes a client's --name only if
// it is a valid name (it reaches events, status and metrics labels), whatever
// client sent it.
func TestDaemonChecksTheServerName(t *testing.T) {
	d := startDaemon(t, listenLoopback(t).port(), "", nil)
	_, err := rawPrepare(t, d, sandbox.RemoteRequest{Profile: "e2e-deny", Name: "x\x1b]0;title\x07"})
	if err == nil || !strings.Contains(err.Error(), "must be 1-64 letters") {
		t.Fatalf("prepare with a name holding escape sequences: %v, want a refusal", err)
	}
}

// TestDaemonChecksTheProfileLabel: a client's own profile is shown by its
// file name, in status and events (to root too): one with control
// characters is refused.
func TestDaemonChecksTheProfileLabel(t *testing.T) {
	d := startDaemon(t, listenLoopback(t).port(), "allow_user_profiles: true\n", nil)
	yaml := "apiVersion: mcpjail.dev/v1\nkind: Profile\nname: mine\nfilesystem:\n  exec: [/bin/true]\n"
	_, err := rawPrepare(t, d, sandbox.RemoteRequest{ProfileYAML: yaml, ProfileLabel: "/home/u/p\x1b[2J.yaml"})
	if err == nil || !strings.Contains(err.Error(), "not printable") {
		t.Fatalf("prepare with a label holding escape sequences: %v, want a refusal", err)
	}
}

// rawPrepare dials the daemon as the test (root) and sends a prepare request
// the way any client could, with a fresh instance and a private TMPDIR.
func rawPrepare(t *testing.T, d *testDaemon, req sandbox.RemoteRequest) (*api.Client, error) {
	t.Helper()
	c, err := api.Dial(withTimeout(t, 30*time.Second), d.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	instance := make([]byte, 6)
	if _, err := rand.Read(instance); err != nil {
		t.Fatal(err)
	}
	req.Instance = hex.EncodeToString(instance)
	req.Workdir, req.TmpDir = t.TempDir(), t.TempDir()
	if err := os.Chmod(req.TmpDir, 0o700); err != nil { // as mcpjail run makes its private TMPDIR
		t.Fatal(err)
	}
	_, err = c.Prepare(req)
	return c, err
}
