package confine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/seccompnotify"
)

// applyAndSendListener is the helper's ApplyReporting: the listener goes
// to the test over descriptor 3, as the init step sends it to mcpjail.
func applyAndSendListener(plan *Plan) error {
	listener, missing, err := plan.ApplyReporting()
	if err != nil {
		return err
	}
	defer unix.Close(3)
	if listener == nil {
		return fmt.Errorf("ApplyReporting gave no listener (missing %q, plan missing %q)", missing, plan.Missing())
	}
	defer listener.Close()
	return seccompnotify.SendListener(3, listener, missing)
}

// runReportingHelper runs the helper with ApplyReporting and answers its
// refusals with the deny-list's rules; it returns the reply and what was
// reported.
func runReportingHelper(t *testing.T, req helperRequest) (helperReply, []seccompnotify.Refusal) {
	t.Helper()
	req.Report = true
	raw, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "theirs")
	defer ours.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(raw))
	cmd.ExtraFiles = []*os.File{theirs}
	var stdout strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, missing, err := seccompnotify.ReceiveListener(ctx, ours)
	if err != nil || l == nil {
		cmd.Process.Kill()
		t.Fatalf("no listener from the helper (missing %q): %v", missing, err)
	}
	notified, err := NotifiedSyscalls()
	if err != nil {
		t.Fatal(err)
	}
	rules := map[int]seccompnotify.Rule{}
	for nr, d := range notified {
		rules[nr] = seccompnotify.Rule{Name: d.Name, Errno: d.Errno, Reason: d.Reason}
	}
	var mu sync.Mutex
	var refusals []seccompnotify.Refusal
	served := make(chan error, 1)
	go func() {
		served <- seccompnotify.Serve(context.Background(), l, rules, func(r seccompnotify.Refusal) {
			mu.Lock()
			defer mu.Unlock()
			refusals = append(refusals, r)
		})
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v\n%s", err, stdout.String())
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	for line := range strings.Lines(stdout.String()) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), replyPrefix); ok {
			var reply helperReply
			if err := json.Unmarshal([]byte(rest), &reply); err != nil {
				t.Fatal(err)
			}
			if reply.ApplyErr != "" || len(reply.Results) != len(req.Probes) {
				t.Fatalf("helper: apply error %q, %d of %d probes", reply.ApplyErr, len(reply.Results), len(req.Probes))
			}
			return reply, refusals
		}
	}
	t.Fatalf("helper printed no reply:\n%s", stdout.String())
	return helperReply{}, nil
}

// TestSeccompRefusalsReportedInJail: in the full jail with the notifying
// deny-list, every refused call still gets its errno, and exactly the calls
// of EventNotification reach the supervisor, named with their arguments.
func TestSeccompRefusalsReportedInJail(t *testing.T) {
	requireLandlock(t, 6)
	f := newJailFixture(t)
	probes := []struct {
		probe
		want, target string // target "": not reported by notification
	}{
		{probe{Op: "bpf"}, "EPERM", "bpf cmd 65535"},
		{probe{Op: "ptrace"}, "EPERM", "ptrace PTRACE_ATTACH pid 1073741824"},
		{probe{Op: "io_uring_setup"}, "EPERM", "io_uring_setup entries 0"},
		{probe{Op: "mount"}, "EPERM", "mount"},
		{probe{Op: "unshare-newuser"}, "EPERM", "unshare CLONE_NEWUSER"},
		{probe{Op: "clone-newuser"}, "EPERM", "clone CLONE_NEWUSER"},
		{probe{Op: "clone3"}, "ENOSYS", ""},
		{probe{Op: "socket", Arg: fmt.Sprintf("%#x,%#x,0", unix.AF_PACKET, unix.SOCK_RAW)}, "EPERM", ""},
		{probe{Op: "socket", Arg: fmt.Sprintf("%#x,%#x,0", unix.AF_INET, unix.SOCK_STREAM)}, "OK", ""},
	}
	var req helperRequest
	req.Spec = Spec{Policy: f.policy}
	var wantTargets []string
	for _, p := range probes {
		req.Probes = append(req.Probes, p.probe)
		if p.target != "" {
			wantTargets = append(wantTargets, p.target)
		}
	}
	reply, refusals := runReportingHelper(t, req)
	for i, p := range probes {
		if reply.Results[i] != p.want {
			t.Errorf("%s %s: %s, want %s", p.Op, p.Arg, reply.Results[i], p.want)
		}
	}
	var got []string
	for _, r := range refusals {
		got = append(got, r.Target)
		if r.PID == 0 || r.Errno != unix.EPERM || r.Reason == "" {
			t.Errorf("refusal %+v", r)
		}
	}
	if !slices.Equal(got, wantTargets) {
		t.Errorf("reported %q, want %q", got, wantTargets)
	}
}

// reportingTwiceProbe installs a filter with a listener that notifies
// nothing, then confines with ApplyReporting, as mcpjail would under a
// parent that uses seccomp notifications itself. It returns the outcome
// and the number of filters the process ends up with.
func reportingTwiceProbe(degraded bool) string {
	runtime.LockOSThread()
	if err := setNoNewPrivs(); err != nil {
		return err.Error()
	}
	allowAll := []bpf.Instruction{bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW}}
	parent, err := installSeccompListener(allowAll)
	if err != nil {
		return "parent filter: " + err.Error()
	}
	defer parent.Close()
	// Opened before Landlock forbids it; the file is generated at the first read.
	status, err := os.Open("/proc/thread-self/status")
	if err != nil {
		return err.Error()
	}
	defer status.Close()
	facts, err := detectKernel()
	if err != nil {
		return err.Error()
	}
	plan, err := buildPlan(Spec{Degraded: degraded}, facts)
	if err != nil {
		return err.Error()
	}
	listener, missing, err := plan.ApplyReporting()
	outcome := "missing: " + missing
	switch {
	case err != nil:
		outcome = err.Error()
	case listener != nil:
		listener.Close()
		outcome = "got a listener"
	}
	return outcome + "; " + seccompFilters(status)
}

// seccompFilters is the Seccomp_filters line of a /proc status file.
func seccompFilters(status *os.File) string {
	b, _ := io.ReadAll(status)
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, "Seccomp_filters:") {
			return "filters " + strings.TrimSpace(strings.TrimPrefix(line, "Seccomp_filters:"))
		}
	}
	return "filters ?"
}

// TestApplyReportingUnderAParentListener: the kernel allows one listener
// per chain of filters (EBUSY for a second). Without Degraded that refuses
// the run before any deny-list is installed; with it the deny-list that
// answers by itself is installed and ApplyReporting says why there are no
// events.
func TestApplyReportingUnderAParentListener(t *testing.T) {
	requireRoot(t)
	for _, c := range []struct {
		arg, want string
	}{
		{"", "refusing to run without: seccomp refusal events (a seccomp filter inherited by mcpjail already has a listener (EBUSY)) (--allow-degraded runs anyway); filters 1"},
		{"degraded", "missing: seccomp refusal events (a seccomp filter inherited by mcpjail already has a listener (EBUSY)); filters 2"},
	} {
		reply := runHelper(t, helperRequest{NoConfine: true, Probes: []probe{{Op: "reporting-twice", Arg: c.arg}}})
		if got := reply.Results[0]; got != c.want {
			t.Errorf("ApplyReporting under a listener (%q):\n got %q\nwant %q", c.arg, got, c.want)
		}
	}
}
