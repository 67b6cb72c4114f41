package bpf

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox/cgroup"
)

// envHelper turns the test binary into a helper process that makes the
// attempts JSON-encoded in the variable and prints one result per attempt.
const envHelper = "MCPJAIL_BPF_TEST_ATTEMPTS"

// hangBound only keeps a broken kernel from hanging the suite; no test
// asserts how long anything takes.
const hangBound = 30 * time.Second

func TestMain(m *testing.M) {
	if spec := os.Getenv(envHelper); spec != "" {
		os.Exit(runAttempts(spec))
	}
	if spec := os.Getenv(envOpenProbe); spec != "" {
		os.Exit(runOpenProbe(spec))
	}
	os.Exit(m.Run())
}

// attempt is one network operation the helper makes.
type attempt struct {
	Op     string // "connect", "sendto", "fastopen" (TCP sendto with MSG_FASTOPEN), "socket"
	Addr   string // "127.0.0.1:80", "[::1]:80", a UNIX socket path or "@abstract"
	Domain int    // socket: family, type, protocol
	Type   int
	Proto  int
	Repeat int // make the attempt this many times (0 means once); report the last
}

func runAttempts(spec string) int {
	var as []attempt
	if err := json.Unmarshal([]byte(spec), &as); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	results := make([]string, len(as))
	for i, a := range as {
		for range max(a.Repeat, 1) {
			results[i] = errnoName(a.run())
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		return 2
	}
	return 0
}

func errnoName(err error) string {
	var en syscall.Errno
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &en):
		return unix.ErrnoName(en)
	}
	return err.Error()
}

// run makes the attempt with raw syscalls, so that nothing in between
// (resolvers, happy eyeballs) changes what the kernel sees.
func (a attempt) run() error {
	if a.Op == "socket" {
		fd, err := unix.Socket(a.Domain, a.Type, a.Proto)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}
	sa, domain, err := sockaddrOf(a.Addr)
	if err != nil {
		return err
	}
	typ := unix.SOCK_STREAM
	if a.Op == "sendto" {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(domain, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	switch a.Op {
	case "sendto":
		return unix.Sendto(fd, []byte("x"), 0, sa)
	case "fastopen":
		// TCP Fast Open: sendto connects, without connect(2), and carries
		// data in the SYN.
		return unix.Sendto(fd, []byte("x"), unix.MSG_FASTOPEN, sa)
	}
	return unix.Connect(fd, sa)
}

func sockaddrOf(s string) (unix.Sockaddr, int, error) {
	if len(s) > 0 && (s[0] == '/' || s[0] == '@') { // '@': abstract, as Go spells it
		return &unix.SockaddrUnix{Name: s}, unix.AF_UNIX, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, 0, err
	}
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}, unix.AF_INET, nil
	}
	return &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}, unix.AF_INET6, nil
}

// runHelper runs the attempts in a child process, born in grp when grp is
// not nil, and returns its pid and one errno name (or "ok") per attempt.
func runHelper(t *testing.T, grp *cgroup.Group, as []attempt) (int, []string) {
	t.Helper()
	if grp == nil {
		return runHelperInFD(t, -1, as)
	}
	fd, err := grp.OpenV2()
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	return runHelperInFD(t, int(fd.Fd()), as)
}

// runHelperInFD is runHelper with the cgroup given as an open directory
// (-1: the helper stays in the test's own cgroup).
func runHelperInFD(t *testing.T, cgroupFD int, as []attempt) (int, []string) {
	t.Helper()
	pid, results, err := helperRun(cgroupFD, as)
	if err != nil {
		t.Fatal(err)
	}
	return pid, results
}

// helperRun does the work of runHelperInFD; it reports instead of failing
// the test so that it can run on goroutines other than the test's.
func helperRun(cgroupFD int, as []attempt) (int, []string, error) {
	spec, err := json.Marshal(as)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envHelper+"="+string(spec))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if cgroupFD >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgroupFD}
	}
	if err := cmd.Run(); err != nil {
		return 0, nil, fmt.Errorf("helper: %w (output %q)", err, out.String())
	}
	var results []string
	if err := json.Unmarshal(out.Bytes(), &results); err != nil {
		return 0, nil, fmt.Errorf("helper output %q: %w", out.String(), err)
	}
	return cmd.Process.Pid, results, nil
}

// helperRunIn runs the test binary as the helper that the environment
// variable env selects, with spec JSON-encoded in it, born in grp (nil: the
// test's own cgroup), bounded by hangBound. It returns the finished command,
// its output and Run's error; ctxErr says the bound killed it.
func helperRunIn(t testing.TB, grp *cgroup.Group, env string, spec any) (cmd *exec.Cmd, out *bytes.Buffer, runErr, ctxErr error) {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	cmd = exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"="+string(b))
	out = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, os.Stderr
	if grp != nil {
		fd, err := grp.OpenV2()
		if err != nil {
			t.Fatal(err)
		}
		defer fd.Close()
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(fd.Fd())}
	}
	runErr = cmd.Run()
	return cmd, out, runErr, ctx.Err()
}

func skipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true and " + reason)
	}
	t.Skip(reason)
}

// requireKernel skips (or fails under CI) without root or a cgroup v2 hierarchy.
func requireKernel(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "the test needs root to load eBPF programs and create cgroups")
	}
	if m := cgroup.DetectMode(); m != cgroup.ModeV2 && m != cgroup.ModeHybrid {
		skipOrFail(t, fmt.Sprintf("cgroup mode %s has no v2 hierarchy to attach to", m))
	}
}

// newGroup creates a jail cgroup, removed when the test ends.
func newGroup(t testing.TB) *cgroup.Group {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	g, _, err := cgroup.Create(fmt.Sprintf("bpftest-%d-%s", os.Getpid(), hex.EncodeToString(b)), profiles.Limits{})
	if err != nil {
		t.Fatalf("create cgroup: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hangBound)
		defer cancel()
		if err := g.Remove(ctx); err != nil {
			t.Errorf("remove cgroup: %v", err)
		}
	})
	return g
}

func newLoader(t *testing.T) *Loader {
	t.Helper()
	l, err := Load(context.Background(), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// collector keeps every event the loader delivers: on its own channel and
// on the channel of every jail registered (followed as they appear).
type collector struct {
	l        *Loader
	mu       sync.Mutex
	events   []Event
	followed map[*Jail]bool
}

func collect(l *Loader) *collector {
	c := &collector{l: l, followed: map[*Jail]bool{}}
	go c.read(l.Events())
	go func() {
		// A jail's channel buffers its events until it is followed; the
		// accessors follow too, before they look.
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-l.done:
				return
			case <-tick.C:
				c.follow()
			}
		}
	}()
	return c
}

func (c *collector) read(events <-chan Event) {
	for ev := range events {
		c.mu.Lock()
		c.events = append(c.events, ev)
		c.mu.Unlock()
	}
}

// follow starts reading the channel of every jail not followed yet.
func (c *collector) follow() {
	for _, j := range c.l.Jails() {
		c.mu.Lock()
		seen := c.followed[j]
		c.followed[j] = true
		c.mu.Unlock()
		if !seen {
			go c.read(j.Events())
		}
	}
}

// wait returns the first event matching want's kind, target and pid.
func (c *collector) wait(t *testing.T, kind, target string, pid int) Event {
	t.Helper()
	deadline := time.Now().Add(hangBound)
	for time.Now().Before(deadline) {
		c.follow()
		c.mu.Lock()
		for _, ev := range c.events {
			if string(ev.Kind) == kind && ev.Target == target && ev.PID == pid {
				c.mu.Unlock()
				return ev
			}
		}
		c.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t.Fatalf("no event %s %s from pid %d; got %+v", kind, target, pid, c.events)
	return Event{}
}
