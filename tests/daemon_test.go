package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/daemon/api"
)

// TestDaemonGivesUnprivilegedRunsTheWholeJail: uid 65534 runs the fixture
// through the daemon and meets the same kernel as a root run: a denied
// connect fails with EPERM (and kills under network: kill), a file outside
// the profile is refused by Landlock, the memory limit holds, and the
// allowed port still works. The events reach the user's own audit log and
// the daemon's.
func TestDaemonGivesUnprivilegedRunsTheWholeJail(t *testing.T) {
	allowed := listenLoopback(t)
	denied := deniedTwin(t, allowed)
	d := startDaemon(t, allowed.port(), "", nil)
	workdir := nobodyDir(t)
	deny, kill := d.nobody("e2e-deny", workdir), d.nobody("e2e-kill", workdir)

	ok := deny.run(t, nil, suite.hostile, "attempt", "tcp_connect", fmt.Sprintf("127.0.0.1:%d", allowed.port()))
	if r := decodeAttempt(t, ok.stdout); ok.code != 0 || !r.OK {
		t.Fatalf("allowed connect through the daemon: exit %d ok=%v errno=%q\nstderr:\n%s", ok.code, r.OK, r.Errno, ok.stderr)
	}

	// Its own PID namespace, as a root run has: inside a user namespace that
	// maps only uid 65534.
	self := deny.run(t, nil, suite.hostile, "attempt", "self")
	var ns struct {
		PIDNS      string `json:"pid_ns"`
		UID        [3]int `json:"uid"`
		CapEff     uint64 `json:"cap_eff"`
		CapPrm     uint64 `json:"cap_prm"`
		CapBnd     uint64 `json:"cap_bnd"`
		CapAmb     uint64 `json:"cap_amb"`
		NoNewPrivs bool   `json:"no_new_privs"`
	}
	if err := json.Unmarshal(decodeAttempt(t, self.stdout).Data, &ns); err != nil {
		t.Fatalf("decode self: %v\n%s", err, self.stdout)
	}
	if mine, _ := os.Readlink("/proc/self/ns/pid"); ns.PIDNS == "" || ns.PIDNS == mine || ns.UID != [3]int{65534, 65534, 65534} {
		t.Errorf("server: PID namespace %q (the test's is %q), uids %v: want its own PID namespace, as uid 65534", ns.PIDNS, mine, ns.UID)
	}
	// Its user namespace starts with every capability in the bounding set;
	// the init step empties it on the thread that execs the server.
	if ns.CapEff|ns.CapPrm|ns.CapBnd|ns.CapAmb != 0 || !ns.NoNewPrivs {
		t.Errorf("server: eff %#x prm %#x bnd %#x amb %#x no_new_privs %v; want no capability in any set and no_new_privs",
			ns.CapEff, ns.CapPrm, ns.CapBnd, ns.CapAmb, ns.NoNewPrivs)
	}
	if findEvent(self.events, func(e audit.Event) bool {
		return e.Kind == audit.KindDegraded && strings.Contains(e.Reason, "PID namespace")
	}) {
		t.Errorf("the run went without a PID namespace:\n%s", formatEvents(self.events))
	}

	target := fmt.Sprintf("127.0.0.2:%d/tcp", denied.port())
	out := deny.run(t, nil, suite.hostile, "attempt", "tcp_connect", fmt.Sprintf("127.0.0.2:%d", denied.port()))
	if r := decodeAttempt(t, out.stdout); out.code != 0 || r.OK || r.Errno != "EPERM" {
		t.Errorf("denied connect: exit %d ok=%v errno=%q, want EPERM\nstderr:\n%s", out.code, r.OK, r.Errno, out.stderr)
	}
	if !findEvent(out.events, denyEvent(audit.KindConnect, target)) {
		t.Errorf("the user's audit log has no connect deny for %s:\n%s", target, formatEvents(out.events))
	}

	out = kill.run(t, nil, suite.hostile, "attempt", "tcp_connect", fmt.Sprintf("127.0.0.2:%d", denied.port()))
	if out.code != 137 {
		t.Errorf("denied connect under network: kill: exit %d, want 137 (SIGKILL)\nstdout %q\nstderr:\n%s", out.code, out.stdout, out.stderr)
	}
	if !findEvent(out.events, func(e audit.Event) bool { return e.Kind == audit.KindKill }) {
		t.Errorf("no kill event:\n%s", formatEvents(out.events))
	}
	if n := denied.accepted.Load(); n != 0 {
		t.Errorf("the denied listener accepted %d connection(s)", n)
	}

	out = deny.run(t, nil, suite.hostile, "attempt", "read_file", "/etc/passwd")
	if r := decodeAttempt(t, out.stdout); out.code != 0 || r.OK || r.Errno != "EACCES" {
		t.Errorf("read outside the profile: exit %d ok=%v errno=%q, want EACCES\nstderr:\n%s", out.code, r.OK, r.Errno, out.stderr)
	}

	out = deny.run(t, nil, suite.hostile, "attempt", "mem_bomb", "256")
	if out.code != 137 && !strings.Contains(out.stdout, `"ok":false`) {
		t.Errorf("256 MiB under a 64 MiB limit: exit %d, stdout %q", out.code, out.stdout)
	}
	if !findEvent(out.events, func(e audit.Event) bool { return e.Kind == audit.KindLimit && e.Target == "memory" }) {
		t.Errorf("no memory limit event:\n%s", formatEvents(out.events))
	}

	daemonEvents := readEvents(t, d.auditLog)
	if !findEvent(daemonEvents, denyEvent(audit.KindConnect, target)) {
		t.Errorf("the daemon's audit log has no connect deny for %s:\n%s", target, formatEvents(daemonEvents))
	}
	scrape := scrapeMetrics(t, d.metrics)
	if !hasLine(scrape, func(l string) bool {
		return strings.HasPrefix(l, "mcpjail_events_total{") && strings.Contains(l, `kind="connect"`) && strings.Contains(l, `verdict="deny"`) && !strings.HasSuffix(l, " 0")
	}) {
		t.Errorf("metrics show no denied connect:\n%s", scrape)
	}
	// A run's jail is stopped before its client exits; its sockets and
	// programs go right after, and with them the jail from status.
	var st *api.Status
	if left := eventually(cleanupDeadline, func() []string {
		var err error
		if st, err = d.status(); err != nil {
			return []string{err.Error()}
		}
		var held []string
		for _, j := range st.Jails {
			held = append(held, j.Server.Name+"/"+j.Server.Instance)
		}
		return held
	}); len(left) > 0 {
		t.Fatalf("after the runs the daemon still holds jails: %v", left)
	}
	// status says which layers are active, as doctor's probes do.
	wantLSM := "BPF-LSM layer unavailable"
	if lsmActive() {
		wantLSM = "BPF-LSM deny layer: active"
	}
	if !slices.ContainsFunc(st.Layers, func(l string) bool { return strings.HasPrefix(l, wantLSM) }) {
		t.Errorf("status layers %q do not say %q", st.Layers, wantLSM)
	}
}

// TestDaemonRunWithoutUserNamespaces: the init step of a run through the
// daemon starts in a user namespace before the daemon answers. Where the
// host allows none, the run refuses, or with --allow-degraded goes on in
// the host's PID namespace and says so.
func TestDaemonRunWithoutUserNamespaces(t *testing.T) {
	requireRoot(t)
	d := startDaemon(t, listenLoopback(t).port(), "", nil)
	workdir := nobodyDir(t)

	strict := d.nobody("e2e-deny", workdir)
	strict.strict, strict.noUserNS = true, true
	out := strict.run(t, nil, suite.hostile, "attempt", "self")
	if out.code != 125 {
		t.Errorf("without user namespaces: exit %d, want 125 (refused)\nstdout %q\nstderr:\n%s", out.code, out.stdout, out.stderr)
	}
	// A kernel that lacks a layer of the profile (suite.gaps) is refused
	// for that first, before the launch.
	if len(suite.gaps) == 0 && !strings.Contains(out.stderr, "cannot create a user namespace") {
		t.Errorf("the refusal does not name the user namespace:\n%s", out.stderr)
	}

	degraded := d.nobody("e2e-deny", workdir)
	degraded.allowDegraded, degraded.noUserNS = true, true
	out = degraded.run(t, nil, suite.hostile, "attempt", "self")
	var self struct {
		PIDNS string `json:"pid_ns"`
	}
	if err := json.Unmarshal(decodeAttempt(t, out.stdout).Data, &self); out.code != 0 || err != nil {
		t.Fatalf("degraded run: exit %d (%v)\nstdout %q\nstderr:\n%s", out.code, err, out.stdout, out.stderr)
	}
	if mine, _ := os.Readlink("/proc/self/ns/pid"); self.PIDNS != mine {
		t.Errorf("server's PID namespace %q, want the host's %q (no user namespace to own another)", self.PIDNS, mine)
	}
	if !findEvent(out.events, func(e audit.Event) bool {
		return e.Kind == audit.KindDegraded && strings.Contains(e.Reason, "without a PID namespace")
	}) {
		t.Errorf("no degraded event for the PID namespace:\n%s", formatEvents(out.events))
	}
}

// TestDaemonRefusesWhatTheConfigDoesNotAllow: a user outside the allowed
// users is refused at the socket, and an allowed user cannot bring a
// profile of their own.
func TestDaemonRefusesWhatTheConfigDoesNotAllow(t *testing.T) {
	allowed := listenLoopback(t)
	d := startDaemon(t, allowed.port(), "", nil)
	workdir := nobodyDir(t)

	own := writeProfile(t, workdir, "mine", fmt.Sprintf("filesystem:\n  exec: [%q]\n", suite.hostile))
	out := d.nobody(own, workdir).run(t, nil, suite.hostile, "exit", "0")
	if out.code != 125 || !strings.Contains(out.stderr, "allow_user_profiles") {
		t.Errorf("own profile: exit %d, want 125 naming allow_user_profiles\nstderr:\n%s", out.code, out.stderr)
	}

	cmd := exec.Command(setprivPath, "--reuid=65533", "--regid=65533", "--clear-groups", suite.mcpjail,
		"run", "--socket", d.socket, "--profile", "e2e-deny", "--workdir", workdir, "--", suite.hostile, "exit", "0")
	cmd.Env = defaultClientEnv()
	b, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 125 || !strings.Contains(string(b), "permission denied") {
		t.Errorf("uid 65533: exit %d, want 125 with permission denied\n%s", code, b)
	}
	waitFor(t, "the daemon to log the refused connection", func() bool {
		return strings.Contains(d.stderr.String(), "refused connection") && strings.Contains(d.stderr.String(), "uid=65533")
	})
}

// TestDaemonCrashKeepsJailsEnforced: kill -9 of the daemon while a jailed
// server runs: its denied connect still fails; a restarted daemon adopts
// the jail (status lists it), reports its later violation in events, and
// removes it when the server ends.
func TestDaemonCrashKeepsJailsEnforced(t *testing.T) {
	allowed := listenLoopback(t)
	denied := deniedTwin(t, allowed)
	d := startDaemon(t, allowed.port(), "", nil)
	workdir := nobodyDir(t)
	spec := d.nobody("e2e-deny", workdir)
	cmd, _ := spec.command(t, withTimeout(t, 3*time.Minute), suite.hostile, "serve")
	h := connect(t, cmd)
	deniedArgs := map[string]any{"addr": fmt.Sprintf("127.0.0.2:%d", denied.port())}
	expectDenied(t, h.attempt(t, "tcp_connect", deniedArgs), "EPERM")

	d.kill9(t)
	expectDenied(t, h.attempt(t, "tcp_connect", deniedArgs), "EPERM")
	expectAllowed(t, h.attempt(t, "tcp_connect", map[string]any{"addr": fmt.Sprintf("127.0.0.1:%d", allowed.port())}))

	d.start(t)
	st, err := d.status()
	if err != nil || len(st.Jails) != 1 || !st.Jails[0].Adopted || st.Jails[0].User != "nobody" {
		t.Fatalf("after the restart, status should list the adopted jail of nobody: %+v (%v)\nstderr:\n%s", st, err, d.stderr.String())
	}
	instance := st.Jails[0].Server.Instance
	expectDenied(t, h.attempt(t, "tcp_connect", deniedArgs), "EPERM")
	target := fmt.Sprintf("127.0.0.2:%d/tcp", denied.port())
	waitFor(t, "the adopted jail's violation in mcpjail events", func() bool {
		return hasLine(d.events(t), func(l string) bool {
			return strings.Contains(l, instance) && strings.Contains(l, `"kind":"connect"`) && strings.Contains(l, target)
		})
	})
	if n := denied.accepted.Load(); n != 0 {
		t.Errorf("the denied listener accepted %d connection(s)", n)
	}

	h.close(t)
	waitFor(t, "the adopted jail to be released", func() bool {
		st, err := d.status()
		return err == nil && len(st.Jails) == 0
	})
	if matches, _ := filepath.Glob(filepath.Join(d.dir, "state", "*.json")); len(matches) != 0 {
		t.Errorf("state records left after the jail ended: %v", matches)
	}
}

// deniedTwin listens on 127.0.0.2 at the allowed listener's port: Landlock
// (ports only) lets a connect there through, so the eBPF layer (addresses)
// is what must refuse it.
func deniedTwin(t *testing.T, allowed *tcpListener) *tcpListener {
	t.Helper()
	return listenCounting(t, "tcp", fmt.Sprintf("127.0.0.2:%d", allowed.port()))
}

func scrapeMetrics(t *testing.T, addr string) string {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	return string(b)
}

// TestDaemonAllowGroupAndUserProfiles: with allow_group, a member (nobody,
// whose group nogroup is allowed) is let in and a non-member (daemon, uid 1)
// refused; with allow_user_profiles the member's own profile is enforced.
func TestDaemonAllowGroupAndUserProfiles(t *testing.T) {
	allowed := listenLoopback(t)
	twin := deniedTwin(t, allowed)
	d := startDaemon(t, allowed.port(), "allow_group: \"65534\"\nallow_user_profiles: true\n", nil)
	workdir := nobodyDir(t)
	own := writeProfile(t, workdir, "mine", fmt.Sprintf("filesystem:\n  exec: [%q]\nnetwork:\n  egress: [{cidr: 127.0.0.0/30, ports: [%d]}]\n", suite.hostile, allowed.port()))
	run := func(uid, gid int) (int, string) {
		args := []string{fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", gid), "--clear-groups", suite.mcpjail,
			"run", "--socket", d.socket, "--profile", own, "--workdir", workdir}
		if len(suite.gaps) > 0 {
			args = append(args, "--allow-degraded")
		}
		args = append(args, "--", suite.hostile, "attempt", "tcp_connect", fmt.Sprintf("127.0.0.2:%d", twin.port()))
		cmd := exec.Command(setprivPath, args...)
		cmd.Env = defaultClientEnv()
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		_ = cmd.Run()
		return cmd.ProcessState.ExitCode(), stdout.String() + stderr.String()
	}
	if code, out := run(1, 1); code != 125 || !strings.Contains(out, "not a member of group") {
		t.Errorf("uid 1 outside the group: exit %d, want 125 naming the group\n%s", code, out)
	}
	code, out := run(65534, 65534)
	if code != 0 || !strings.Contains(out, `"ok":true`) {
		t.Errorf("nobody in nogroup with its own profile allowing 127.0.0.2: exit %d\n%s", code, out)
	}
	waitFor(t, "the connect the own profile allows to arrive", func() bool { return twin.accepted.Load() == 1 })
}

// TestDaemonMetricsShowEgressBytes: a jail with an egress budget has its
// bytes in the current window in the metrics while it runs, and the series
// goes when the jail ends.
func TestDaemonMetricsShowEgressBytes(t *testing.T) {
	sink := listenSink(t)
	port := sink.Addr().(*net.TCPAddr).Port
	budget := map[string]string{"e2e-budget": fmt.Sprintf(`
filesystem:
  exec: [%q]
network:
  egress: [{cidr: 127.0.0.1/32, ports: [%d]}]
  egress_budget: {bytes: 16Mi, per: 1m}
`, suite.hostile, port)}
	d := startDaemon(t, port, "", budget)
	cmd, _ := d.nobody("e2e-budget", nobodyDir(t)).command(t, withTimeout(t, 3*time.Minute), suite.hostile, "serve")
	h := connect(t, cmd)
	const sent = 200000
	expectAllowed(t, h.attempt(t, "tcp_stream", map[string]any{"addr": sink.Addr().String(), "bytes": sent}))
	series := func() (string, bool) {
		for _, l := range strings.Split(scrapeMetrics(t, d.metrics), "\n") {
			if strings.HasPrefix(l, `mcpjail_egress_bytes{`) && strings.Contains(l, `server="e2e-budget"`) {
				return l, true
			}
		}
		return "", false
	}
	waitFor(t, "the egress bytes in the metrics", func() bool {
		l, ok := series()
		if !ok {
			return false
		}
		var n float64
		_, err := fmt.Sscanf(l[strings.LastIndex(l, " ")+1:], "%g", &n)
		return err == nil && n >= sent
	})
	h.close(t)
	waitFor(t, "the series to go with the jail", func() bool { _, ok := series(); return !ok })
}

// TestDaemonShowsUsersOnlyTheirOwnJails: a user's `mcpjail events` and
// `status` show their own jails only (paths, argv and addresses are theirs);
// root sees every jail, a root run through the daemon included.
func TestDaemonShowsUsersOnlyTheirOwnJails(t *testing.T) {
	allowed := listenLoopback(t)
	d := startDaemon(t, allowed.port(), "", nil)
	workdir := nobodyDir(t)
	spec := d.nobody("e2e-deny", workdir)
	spec.name = "nobodys-own"
	if out := spec.run(t, nil, suite.hostile, "attempt", "read_file", "/etc/passwd"); out.code != 0 {
		t.Fatalf("nobody's run: exit %d\n%s", out.code, out.stderr)
	}
	root := jailSpec{profile: "e2e-deny", workdir: workdir, name: "roots-own", extra: []string{"--daemon", "always", "--socket", d.socket}}
	if out := root.run(t, nil, suite.hostile, "attempt", "read_file", "/etc/passwd"); out.code != 0 {
		t.Fatalf("root's run through the daemon: exit %d\n%s", out.code, out.stderr)
	}
	asNobody := exec.Command(setprivPath, "--reuid=65534", "--regid=65534", "--clear-groups", suite.mcpjail, "events", "--json", "--socket", d.socket)
	seen, err := asNobody.Output()
	if err != nil {
		t.Fatalf("mcpjail events as nobody: %v", err)
	}
	if !strings.Contains(string(seen), `"name":"nobodys-own"`) || strings.Contains(string(seen), `"name":"roots-own"`) {
		t.Errorf("nobody's events should hold its own jail and not root's:\n%s", seen)
	}
	if all := d.events(t); !strings.Contains(all, `"name":"nobodys-own"`) || !strings.Contains(all, `"name":"roots-own"`) {
		t.Errorf("root's events should hold both jails:\n%s", all)
	}
}

// TestDaemonRunInitStepDeathIsARefusal: through the daemon too, an init
// step that dies before it starts the server (limits.pids too small for
// its own threads) is a refusal that names the limit, not the server's exit.
func TestDaemonRunInitStepDeathIsARefusal(t *testing.T) {
	requireRoot(t)
	d := startDaemon(t, listenLoopback(t).port(), "", map[string]string{
		"e2e-pids2": "filesystem:\n  exec: [\"" + suite.hostile + "\"]\nlimits: {pids: 2}\n",
	})
	out := d.nobody("e2e-pids2", nobodyDir(t)).run(t, nil, suite.hostile, "exit", "0")
	if out.code != 125 || !strings.Contains(out.stderr, "ended before it started the server") || !strings.Contains(out.stderr, "limits.pids (2)") {
		t.Errorf("exit %d, want 125 with a message naming limits.pids (2)\nstderr:\n%s", out.code, out.stderr)
	}
	if exits := eventsOf(out.events, audit.KindExit); len(exits) != 0 {
		t.Errorf("the init step's death was logged as the server's exit:\n%s", formatEvents(out.events))
	}
}
