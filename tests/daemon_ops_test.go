package tests

// The daemon as an operator runs it: declared servers, reload, systemd.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// TestDaemonSupervisesDeclaredServers: a declared server that keeps
// crashing is restarted with backoff, and one whose integrity pin fails is
// never started and is reported as a refusal.
func TestDaemonSupervisesDeclaredServers(t *testing.T) {
	allowed := listenLoopback(t)
	dir := nobodyDir(t)
	servers := filepath.Join(dir, "servers.d")
	writeFile(t, servers, "crasher.yaml", fmt.Sprintf(`name: crasher
command: [%q, "exit", "3"]
profile: e2e-deny
user: nobody
workdir: %s
restart: {policy: on-failure, backoff_initial: 100ms, backoff_max: 400ms}
allow_degraded: %t
`, suite.hostile, dir, len(suite.gaps) > 0), 0o644)
	writeFile(t, servers, "tampered.yaml", fmt.Sprintf(`name: tampered
command: [%q, "idle"]
profile: e2e-pinned
user: nobody
workdir: %s
`, suite.hostile, dir), 0o644)
	// A pin that cannot match: the digest of no file.
	pinned := map[string]string{"e2e-pinned": fmt.Sprintf("server:\n  sha256: %q\nfilesystem:\n  exec: [%q]\n", strings.Repeat("0", 64), suite.hostile)}
	d := startDaemon(t, allowed.port(), fmt.Sprintf("servers_dir: %s\n", servers), pinned)
	waitFor(t, "the crasher to be restarted twice and the tampered server refused", func() bool {
		st, err := d.status()
		if err != nil {
			return false
		}
		var crasher, tampered bool
		for _, s := range st.Declared {
			crasher = crasher || (s.Name == "crasher" && s.Restarts >= 2 && s.LastExit == 3)
			tampered = tampered || (s.Name == "tampered" && s.State == "refused")
		}
		return crasher && tampered
	})
	events := d.events(t)
	if !hasLine(events, func(l string) bool {
		return strings.Contains(l, `"kind":"refuse"`) && strings.Contains(l, "sha256")
	}) {
		t.Errorf("no refuse event naming the failed sha256 pin:\n%s", events)
	}
}

// TestDaemonReloadReplacesRulesOrNothing: SIGHUP with a broken profile
// keeps the running jail's rules (and says so); with a good one the running
// jail's network rules are replaced.
func TestDaemonReloadReplacesRulesOrNothing(t *testing.T) {
	allowed := listenLoopback(t)
	twin := deniedTwin(t, allowed)
	d := startDaemon(t, allowed.port(), "", nil)
	workdir := nobodyDir(t)
	cmd, _ := d.nobody("e2e-deny", workdir).command(t, withTimeout(t, 3*time.Minute), suite.hostile, "serve")
	h := connect(t, cmd)
	twinArgs := map[string]any{"addr": fmt.Sprintf("127.0.0.2:%d", twin.port())}
	expectDenied(t, h.attempt(t, "tcp_connect", twinArgs), "EPERM")

	profile := filepath.Join(d.dir, "profiles", "e2e-deny.yaml")
	writeFile(t, filepath.Dir(profile), filepath.Base(profile), "apiVersion: mcpjail.dev/v1\nkind: Profile\nname: e2e-deny\nnetwork: {egress: [{cidr: 127.0.0.0/8, portz: [1]}]}\n", 0o644)
	d.hup(t)
	waitFor(t, "the broken reload to be rejected", func() bool { return strings.Contains(d.stderr.String(), "reload rejected") })
	expectDenied(t, h.attempt(t, "tcp_connect", twinArgs), "EPERM")
	expectAllowed(t, h.attempt(t, "tcp_connect", map[string]any{"addr": fmt.Sprintf("127.0.0.1:%d", allowed.port())}))

	writeProfile(t, filepath.Dir(profile), "e2e-deny", fmt.Sprintf(`
filesystem:
  read: ["${WORKDIR}"]
  exec: [%q]
network:
  egress:
    - cidr: 127.0.0.0/30
      ports: [%d]
on_violation: {network: deny}
`, suite.hostile, allowed.port()))
	d.hup(t)
	waitFor(t, "the good reload", func() bool { return strings.Contains(d.stderr.String(), "profiles reloaded") })
	expectAllowed(t, h.attempt(t, "tcp_connect", twinArgs))
	// The listener counts in its own goroutine: wait for it.
	waitFor(t, "the connect to 127.0.0.2 after the reload to arrive", func() bool { return twin.accepted.Load() > 0 })
	scrape := scrapeMetrics(t, d.metrics)
	for _, result := range []string{"error", "ok"} {
		if !hasLine(scrape, func(l string) bool {
			return strings.HasPrefix(l, `mcpjail_profile_reloads_total{result="`+result+`"} `) && !strings.HasSuffix(l, " 0")
		}) {
			t.Errorf("metrics do not count the %s reload:\n%s", result, scrape)
		}
	}
}

// TestDaemonTalksToSystemd: under a notify socket the daemon says READY=1
// once it serves, pings the watchdog at half of WATCHDOG_USEC, and says
// STOPPING=1 on SIGTERM, the protocol of Type=notify with WatchdogSec.
func TestDaemonTalksToSystemd(t *testing.T) {
	allowed := listenLoopback(t)
	d := newDaemon(t, allowed.port(), "", nil)
	path := filepath.Join(t.TempDir(), "notify.sock")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ln.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	d.env = []string{"NOTIFY_SOCKET=" + path, "WATCHDOG_USEC=400000"}
	d.start(t)
	expectNotify := func(want string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case m := <-got:
				if strings.Contains(m, want) {
					return
				}
			case <-deadline:
				t.Fatalf("no %q from the daemon on its notify socket", want)
			}
		}
	}
	expectNotify("READY=1")
	expectNotify("WATCHDOG=1")
	expectNotify("WATCHDOG=1")
	d.stop(t)
	expectNotify("STOPPING=1")
}

// TestDaemonCleanupRemovesRunningJails: --cleanup after a daemon crash ends
// the jails it left running (their servers killed, their cgroups gone), then
// removes the pins and the state records.
func TestDaemonCleanupRemovesRunningJails(t *testing.T) {
	allowed := listenLoopback(t)
	d := startDaemon(t, allowed.port(), "", nil)
	cmd, _ := d.nobody("e2e-deny", nobodyDir(t)).command(t, withTimeout(t, 3*time.Minute), suite.hostile, "serve")
	h := connect(t, cmd)
	records, _ := filepath.Glob(filepath.Join(d.dir, "state", "*.json"))
	if len(records) != 1 {
		t.Fatalf("want one state record for the running jail, got %v", records)
	}
	var rec struct {
		Cgroup struct {
			V2 string `json:"v2"`
		} `json:"cgroup"`
	}
	b, err := os.ReadFile(records[0])
	if err != nil || json.Unmarshal(b, &rec) != nil || rec.Cgroup.V2 == "" {
		t.Fatalf("read state record %s: %v\n%s", records[0], err, b)
	}
	// Beside the jails' parent: the empty cgroup that keeps one attachment
	// of each jail program while the daemon runs (bpf.Loader.KeepHooksWarm).
	warm := filepath.Join(filepath.Dir(filepath.Dir(rec.Cgroup.V2)), "mcpjail-hooks-warm")
	if n := programsAttached(t, warm, ebpf.AttachCGroupInet4Connect); n != 1 {
		t.Errorf("%d connect4 programs attached to %s while the daemon runs, want 1", n, warm)
	}
	d.kill9(t)
	if out, err := exec.Command(suite.mcpjail, "daemon", "--config", d.config, "--cleanup").CombinedOutput(); err != nil {
		t.Fatalf("daemon --cleanup: %v\n%s", err, out)
	}
	if code := h.close(t); code != 137 {
		t.Errorf("the jailed server's run ended with %d, want 137: --cleanup must kill it", code)
	}
	for _, gone := range []string{rec.Cgroup.V2, warm, d.pinDir, filepath.Join(d.dir, "state")} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("%s still exists after --cleanup (%v)", gone, err)
		}
	}
}

// programsAttached counts the programs attached directly to the cgroup
// directory dir as at.
func programsAttached(t *testing.T, dir string, at ebpf.AttachType) int {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: at})
	if err != nil {
		t.Fatalf("query %s programs on %s: %v", at, dir, err)
	}
	return len(res.Programs)
}
