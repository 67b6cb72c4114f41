package bpf

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox/cgroup"
	"github.com/mcpjail/mcpjail/sandbox/confine"
	"github.com/mcpjail/mcpjail/sandbox/features/confinement"

	"github.com/landlock-lsm/go-landlock/landlock"
)

// envWatchHelper turns the test binary into a helper that confines itself
// with Landlock (sandbox/confine) and then makes the watchRequest's steps.
// Checked in init, like the egress helper, so TestMain needs no change.
const envWatchHelper = "MCPJAIL_BPF_TEST_WATCH"

func init() {
	if spec := os.Getenv(envWatchHelper); spec != "" {
		os.Exit(runWatchSteps(spec))
	}
}

type watchRequest struct {
	// Confine, when set, is applied with confine.NewPlan/Apply first, so
	// that Landlock refuses what the policy does not allow.
	Confine *profiles.Policy
	// LandlockRead, when set instead, is Landlock alone: these directories
	// read-only, nothing else, and no seccomp filter (which refuses openat2
	// before Landlock could).
	LandlockRead []string
	Steps        []watchStep
}

// watchStep is one syscall the helper makes.
type watchStep struct {
	// "exec", "execveat", "memfd exec", "open", "openat2", "chdir", "connect", "raw socket",
	// "socket", "socketpair", "stuck socketpair", "fork"; and where they exist "open(2)", "creat(2)"
	Op    string
	Path  string   // exec, execveat, memfd exec (the file copied into the memfd), open, openat2, chdir, open(2), creat(2)
	Args  []string // exec, execveat, memfd exec
	Flags int      // open, openat2
	Addr  string   // connect: "127.0.0.1:port"
	// socket, socketpair: the raw arguments.
	Family, Type, Proto int
	// fork: the child exits with Status, or is ended by Signal when set.
	Status int
	Signal syscall.Signal
}

func runWatchSteps(spec string) int {
	var req watchRequest
	if err := json.Unmarshal([]byte(spec), &req); err != nil {
		fmt.Fprintln(os.Stderr, "watch helper:", err)
		return 2
	}
	if req.Confine != nil {
		plan, err := confine.NewPlan(confine.Spec{Policy: *req.Confine})
		if err == nil {
			err = plan.Apply()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "watch helper: confine:", err)
			return 2
		}
	}
	if req.LandlockRead != nil {
		if err := landlock.V4.RestrictPaths(landlock.RODirs(req.LandlockRead...)); err != nil {
			fmt.Fprintln(os.Stderr, "watch helper: landlock:", err)
			return 2
		}
	}
	results := make([]string, len(req.Steps))
	for i, s := range req.Steps {
		results[i] = s.result()
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		return 2
	}
	return 0
}

// result makes the step: an errno name or "ok", or for a fork the
// child's pid.
func (s watchStep) result() string {
	if s.Op != "fork" {
		return errnoName(s.run())
	}
	pid, err := forkAndReap(s.Status, s.Signal)
	if err != nil {
		return errnoName(err)
	}
	return strconv.Itoa(pid)
}

// run makes the step with raw syscalls, so the kernel sees exactly it.
func (s watchStep) run() error {
	if handled, err := legacyOpen(s); handled {
		return err
	}
	switch s.Op {
	case "exec":
		return syscall.Exec(s.Path, s.Args, os.Environ())
	case "execveat":
		return execveat(s.Path, s.Args)
	case "memfd exec":
		return memfdExec(s.Path, s.Args)
	case "open":
		fd, err := unix.Open(s.Path, s.Flags, 0o600)
		if err == nil {
			unix.Close(fd)
		}
		return err
	case "openat2":
		how := &unix.OpenHow{Flags: uint64(s.Flags)}
		if s.Flags&unix.O_CREAT != 0 { // openat2 refuses a mode without O_CREAT
			how.Mode = 0o600
		}
		fd, err := unix.Openat2(unix.AT_FDCWD, s.Path, how)
		if err == nil {
			unix.Close(fd)
		}
		return err
	case "chdir":
		return unix.Chdir(s.Path)
	case "socket":
		fd, err := unix.Socket(s.Family, s.Type, s.Proto)
		if err == nil {
			unix.Close(fd)
		}
		return err
	case "stuck socketpair":
		return socketpairStuck()
	case "socketpair":
		fds, err := unix.Socketpair(s.Family, s.Type, s.Proto)
		if err == nil {
			unix.Close(fds[0])
			unix.Close(fds[1])
		}
		return err
	case "raw socket":
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
		if err == nil {
			unix.Close(fd)
		}
		return err
	case "connect":
		sa, domain, err := sockaddrOf(s.Addr)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		defer unix.Close(fd)
		return unix.Connect(fd, sa)
	}
	return fmt.Errorf("unknown step %q", s.Op)
}

// watchRun is the outcome of one helper run.
type watchRun struct {
	pid     int
	results []string // nil when the helper did not finish
	signal  syscall.Signal
}

// runWatchHelper runs req in a child born in grp (nil: the test's own
// cgroup). A helper killed by a signal is a result, not a failure.
func runWatchHelper(t *testing.T, grp *cgroup.Group, req watchRequest) watchRun {
	t.Helper()
	cmd, out, err, _ := helperRunIn(t, grp, envWatchHelper, req)
	run := watchRun{}
	if cmd.Process != nil {
		run.pid = cmd.Process.Pid
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			run.signal = ws.Signal()
			return run
		}
	}
	if err != nil {
		t.Fatalf("watch helper: %v (output %q)", err, out.String())
	}
	if err := json.Unmarshal(out.Bytes(), &run.results); err != nil {
		t.Fatalf("watch helper output %q: %v", out.String(), err)
	}
	return run
}

// confinedPolicy is a Landlock policy for the helper: it may read and
// execute nothing but what is listed, and connect to TCP ports only.
func confinedPolicy(read, exec []string, tcpPorts ...uint16) *profiles.Policy {
	p := &profiles.Policy{Name: "bpftest-confined", Filesystem: profiles.Filesystem{Read: read, Exec: exec}}
	for _, port := range tcpPorts {
		p.Network.Egress = append(p.Network.Egress, loopbackPolicy(port).Network.Egress...)
	}
	return p
}

// requireLandlock skips (or fails under CI) without Landlock TCP rules
// (ABI 4), which the confined helpers rely on to be refused anything.
func requireLandlock(t *testing.T) {
	t.Helper()
	if info := confinement.ProbeLandlock(); info.UsableABI < 4 {
		skipOrFail(t, fmt.Sprintf("Landlock ABI %d: the test needs ABI 4 (TCP rules)", info.UsableABI))
	}
}

// execCmd runs a program directly in a jail cgroup (no helper), so that
// the exec event is that of the program itself.
type execCmd struct {
	path     string
	args     []string
	cgroupFD int
}

func (c *execCmd) run(t *testing.T) int {
	t.Helper()
	attr := &syscall.ProcAttr{Files: []uintptr{0, 1, 2},
		Sys: &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: c.cgroupFD}}
	pid, err := syscall.ForkExec(c.path, c.args, attr)
	if err != nil {
		t.Fatalf("run %s: %v", c.path, err)
	}
	var ws syscall.WaitStatus
	deadline := time.Now().Add(hangBound)
	for {
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if err != nil {
			t.Fatalf("wait %s: %v", c.path, err)
		}
		if got == pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not exit", c.path)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("%s: status %v", c.path, ws)
	}
	return pid
}

// memfdExecFD is the descriptor memfdExec runs the memfd from, so that the
// kernel names the program /dev/fd/100.
const memfdExecFD = 100

// memfdExec copies the file at path into a memfd and executes the memfd
// (execveat with AT_EMPTY_PATH): a program that is in no directory.
func memfdExec(path string, args []string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	fd, err := unix.MemfdCreate("payload", unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("memfd_create: %w", err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, b); err != nil {
		return fmt.Errorf("write memfd: %w", err)
	}
	if err := unix.Dup3(fd, memfdExecFD, unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("dup memfd: %w", err)
	}
	return execveatFD(memfdExecFD, "", args, unix.AT_EMPTY_PATH)
}
