package confine

import (
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox/features/confinement"
)

// missingPrerequisite skips, or fails under CI=true, where a missing
// prerequisite must not hide a test.
func missingPrerequisite(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("prerequisite missing under CI: %s", why)
	}
	t.Skipf("skipping: %s", why)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		missingPrerequisite(t, "needs root")
	}
}

func requireLandlock(t *testing.T, abi int) {
	t.Helper()
	got, err := plannedLandlockABI(confinement.ProbeLandlock())
	if err != nil {
		t.Fatal(err)
	}
	if got < abi {
		missingPrerequisite(t, "needs Landlock ABI "+strconv.Itoa(abi)+", kernel has "+strconv.Itoa(got))
	}
}

// jailFixture is a directory tree, listeners and a process outside the
// jail, and a policy over them.
type jailFixture struct {
	root                     string
	allowedPort, deniedPort  int
	bindPort, deniedBindPort int
	abstractName             string
	outsidePid               int
	policy                   profiles.Policy
}

func newJailFixture(t *testing.T) *jailFixture {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &jailFixture{root: root}
	for _, d := range []string{"allowed", "outside", "home/.ssh", "w/sub", "r", "bin"} {
		mustMkdir(t, f.path(d))
	}
	for _, file := range []string{"allowed/file.txt", "outside/secret.txt", "home/.ssh/id", "home/notes.txt",
		"w/f.txt", "w/g.txt", "w/h.txt"} {
		mustWrite(t, f.path(file), "x")
	}
	copyFile(t, "/usr/bin/true", f.path("bin/true-copy"))

	allowed, denied := listenTCP(t), listenTCP(t)
	f.allowedPort, f.deniedPort = allowed, denied
	f.bindPort, f.deniedBindPort = freePort(t), freePort(t)

	f.abstractName = "mcpjail-confine-test-" + strconv.Itoa(os.Getpid())
	ul, err := net.Listen("unix", "@"+f.abstractName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ul.Close() })

	sleep := exec.Command("sleep", "600")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	f.outsidePid = sleep.Process.Pid

	f.policy = profiles.Policy{
		Name: "confine-test",
		Filesystem: profiles.Filesystem{
			Read:  []string{f.path("allowed"), f.path("home"), f.path("r"), f.path("bin"), "/proc"},
			Write: []string{f.path("w")},
			Exec:  []string{"/usr", "/lib", "/lib64"},
			Deny:  []string{f.path("home/.ssh")},
		},
		Network: profiles.Network{
			Egress: []profiles.EgressRule{{
				Prefix:   netip.MustParsePrefix("127.0.0.1/32"),
				Ports:    []profiles.PortRange{{Lo: uint16(allowed), Hi: uint16(allowed)}},
				Protocol: profiles.ProtoTCP,
			}},
			Bind: []profiles.PortRange{{Lo: uint16(f.bindPort), Hi: uint16(f.bindPort)}},
		},
	}
	return f
}

func (f *jailFixture) path(rel string) string { return filepath.Join(f.root, rel) }

func listenTCP(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// check is one probe with the outcomes accepted confined and unconfined
// ("" in unconfined: the control does not run it).
type check struct {
	name       string
	probe      probe
	confined   []string
	unconfined []string
}

func (f *jailFixture) checks() []check {
	p := func(op, arg string) probe { return probe{Op: op, Arg: arg} }
	ok := []string{"OK"}
	return []check{
		{"read inside read", p("read", f.path("allowed/file.txt")), ok, ok},
		{"read outside read", p("read", f.path("outside/secret.txt")), []string{"EACCES"}, ok},
		{"read under deny inside an allowed parent", p("read", f.path("home/.ssh/id")), []string{"EACCES"}, ok},
		{"read a sibling of the denied path", p("read", f.path("home/notes.txt")), ok, ok},
		{"create inside write", p("create", f.path("w/new")), ok, ok},
		{"create in a read-only dir", p("create", f.path("r/new")), []string{"EACCES"}, ok},
		{"create outside every rule", p("create", f.path("outside/new")), []string{"EACCES"}, ok},
		{"rename within write", p("rename", f.path("w/h.txt")+"|"+f.path("w/sub/h.txt")), ok, ok},
		{"rename out of write into read-only", p("rename", f.path("w/f.txt")+"|"+f.path("r/f.txt")), []string{"EACCES", "EXDEV"}, ok},
		{"hard link out of write into read-only", p("link", f.path("w/g.txt")+"|"+f.path("r/g.txt")), []string{"EACCES", "EXDEV"}, ok},
		{"exec under exec", p("exec", "/usr/bin/true"), ok, ok},
		{"exec outside exec", p("exec", f.path("bin/true-copy")), []string{"EACCES"}, ok},
		{"connect to an allowed port", p("connect", strconv.Itoa(f.allowedPort)), ok, ok},
		{"connect to another port", p("connect", strconv.Itoa(f.deniedPort)), []string{"EACCES"}, ok},
		// TCP Fast Open connects from sendto, where Landlock's connect rule
		// never looks (landlock-lsm/linux#41): seccomp refuses MSG_FASTOPEN.
		// Unconfined: ENOTSUP (EOPNOTSUPP) where net.ipv4.tcp_fastopen turns clients off.
		{"TCP Fast Open to another port", p("fastopen", strconv.Itoa(f.deniedPort)), []string{"EPERM"}, []string{"OK", "ENOTSUP"}},
		{"TCP Fast Open to an allowed port", p("fastopen", strconv.Itoa(f.allowedPort)), []string{"EPERM"}, []string{"OK", "ENOTSUP"}},
		{"bind an allowed port", p("bind", strconv.Itoa(f.bindPort)), ok, ok},
		{"bind another port", p("bind", strconv.Itoa(f.deniedBindPort)), []string{"EACCES"}, ok},
		{"MPTCP socket", p("mptcp", ""), []string{"EPERM"}, ok},
		{"bpf", p("bpf", ""), []string{"EPERM"}, []string{"EINVAL"}},
		{"ptrace", p("ptrace", ""), []string{"EPERM"}, []string{"ESRCH"}},
		{"io_uring_setup", p("io_uring_setup", ""), []string{"EPERM"}, []string{"EFAULT", "EINVAL"}},
		{"mount", p("mount", ""), []string{"EPERM"}, []string{"ENOENT"}},
		{"unshare(CLONE_NEWUSER)", p("unshare-newuser", ""), []string{"EPERM"}, []string{"EINVAL"}},
		{"clone(CLONE_NEWUSER)", p("clone-newuser", ""), []string{"EPERM"}, []string{"ENOENT"}},
		{"clone3", p("clone3", ""), []string{"ENOSYS"}, []string{"EINVAL"}},
		{"TIOCSTI (types into the terminal)", p("tiocsti", ""), []string{"EPERM"}, []string{"ENOTTY"}},
		{"TIOCLINUX", p("tioclinux", ""), []string{"EPERM"}, []string{"ENOTTY"}},
		{"signal a process outside the jail", p("kill", strconv.Itoa(f.outsidePid)), []string{"EPERM"}, ok},
		{"connect to an abstract socket outside the jail", p("abstract-connect", f.abstractName), []string{"EPERM"}, ok},
	}
}

func runChecks(t *testing.T, f *jailFixture, noConfine bool) {
	t.Helper()
	checks := f.checks()
	req := helperRequest{Spec: Spec{Policy: f.policy}, NoConfine: noConfine}
	for _, c := range checks {
		req.Probes = append(req.Probes, c.probe)
	}
	reply := runHelper(t, req)
	if reply.ApplyErr != "" {
		t.Fatalf("Apply: %s", reply.ApplyErr)
	}
	for i, c := range checks {
		want := c.confined
		if noConfine {
			want = c.unconfined
		}
		if !slicesContain(want, reply.Results[i]) {
			t.Errorf("%s: got %s, want one of %v", c.name, reply.Results[i], want)
		}
	}
}

func slicesContain(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestControlWithoutConfinement shows that every probe of TestConfinement
// succeeds (or fails differently) without confinement: the denials there
// come from confinement, not from the fixture.
func TestControlWithoutConfinement(t *testing.T) {
	requireRoot(t) // the control's outcomes (signal, ptrace) assume root
	runChecks(t, newJailFixture(t), true)
}

func TestConfinement(t *testing.T) {
	requireLandlock(t, 6)
	runChecks(t, newJailFixture(t), false)
}

func TestPrivilegesDropped(t *testing.T) {
	requireLandlock(t, 6)
	f := newJailFixture(t)
	reply := runHelper(t, helperRequest{Spec: Spec{Policy: f.policy}, Probes: []probe{{Op: "status"}}})
	if reply.ApplyErr != "" {
		t.Fatalf("Apply: %s", reply.ApplyErr)
	}
	want := []string{"CapInh=0000000000000000", "CapPrm=0000000000000000", "CapEff=0000000000000000",
		"CapAmb=0000000000000000", "NoNewPrivs=1", "Seccomp=2"}
	if os.Geteuid() == 0 {
		want = append(want, "CapBnd=0000000000000000")
	}
	for _, w := range want {
		if !strings.Contains(reply.Results[0], w) {
			t.Errorf("status %q lacks %s", reply.Results[0], w)
		}
	}
}

func TestRunsAsCreds(t *testing.T) {
	requireRoot(t)
	requireLandlock(t, 6)
	f := newJailFixture(t)
	spec := Spec{Policy: f.policy, Creds: &Creds{UID: 65534, GID: 65534}}
	reply := runHelper(t, helperRequest{Spec: spec, Probes: []probe{{Op: "ids"}, {Op: "status"}}})
	if reply.ApplyErr != "" {
		t.Fatalf("Apply: %s", reply.ApplyErr)
	}
	if want := "uid=65534/65534/65534 gid=65534/65534/65534 groups=[]"; reply.Results[0] != want {
		t.Errorf("ids = %q, want %q", reply.Results[0], want)
	}
	for _, w := range []string{"CapEff=0000000000000000", "CapPrm=0000000000000000", "CapBnd=0000000000000000", "NoNewPrivs=1"} {
		if !strings.Contains(reply.Results[1], w) {
			t.Errorf("status %q lacks %s", reply.Results[1], w)
		}
	}
}

// TestRefusesWithoutDegraded plans for a kernel with Landlock ABI 2:
// Apply must refuse and leave the process unchanged.
func TestRefusesWithoutDegraded(t *testing.T) {
	f := newJailFixture(t)
	reply := runHelper(t, helperRequest{Spec: Spec{Policy: f.policy}, FakeABI: 2,
		Probes: []probe{{Op: "nnp"}, {Op: "read", Arg: f.path("outside/secret.txt")}}})
	if !strings.Contains(reply.ApplyErr, "refusing") || !strings.Contains(reply.ApplyErr, "TCP rules") {
		t.Errorf("Apply error = %q, want a refusal naming the TCP rules", reply.ApplyErr)
	}
	if reply.Results[0] != "0" || reply.Results[1] != "OK" {
		t.Errorf("after the refusal: no_new_privs %s, read outside %s; want 0 and OK (nothing applied)", reply.Results[0], reply.Results[1])
	}
}

// TestDegradedAppliesWhatExists plans for ABI 3 with --allow-degraded:
// filesystem rules hold, TCP and scopes are not enforced.
func TestDegradedAppliesWhatExists(t *testing.T) {
	requireLandlock(t, 3)
	f := newJailFixture(t)
	reply := runHelper(t, helperRequest{Spec: Spec{Policy: f.policy, Degraded: true}, FakeABI: 3, Probes: []probe{
		{Op: "read", Arg: f.path("outside/secret.txt")},
		{Op: "connect", Arg: strconv.Itoa(f.deniedPort)},
		{Op: "nnp"},
	}})
	if reply.ApplyErr != "" {
		t.Fatalf("Apply: %s", reply.ApplyErr)
	}
	if got := strings.Join(reply.Results, " "); got != "EACCES OK 1" {
		t.Errorf("read outside, connect elsewhere, nnp = %s; want EACCES OK 1", got)
	}
}

// TestListenNeedsABindRule: listen(2) on a socket without bind(2) takes a
// port the kernel picks, which Landlock's bind rules never see, and an
// accepted connection sends to whoever connected. A profile without any
// network.bind port gets no listen at all; one with bind ports keeps it.
func TestListenNeedsABindRule(t *testing.T) {
	requireLandlock(t, 6)
	f := newJailFixture(t)
	for _, tc := range []struct {
		name  string
		binds bool
		want  string
	}{{"no bind ports", false, "EPERM"}, {"bind ports listed", true, "OK"}} {
		t.Run(tc.name, func(t *testing.T) {
			pol := f.policy
			if !tc.binds {
				pol.Network.Bind = nil
			}
			reply := runHelper(t, helperRequest{Spec: Spec{Policy: pol}, Probes: []probe{{Op: "listen"}}})
			if reply.ApplyErr != "" {
				t.Fatalf("Apply: %s", reply.ApplyErr)
			}
			if reply.Results[0] != tc.want {
				t.Errorf("listen without bind: %s, want %s", reply.Results[0], tc.want)
			}
		})
	}
	if len(f.policy.Network.Bind) == 0 {
		t.Fatal("the fixture's policy lists no bind port: the second case proves nothing")
	}
}
