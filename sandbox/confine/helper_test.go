package confine

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Landlock and seccomp cannot be undone, so every confinement test runs in
// a fresh process: the test binary re-executes itself into
// TestHelperProcess with a helperRequest in helperEnv. The helper confines
// itself, runs the probes and prints one helperReply line.

const (
	helperEnv   = "MCPJAIL_CONFINE_HELPER"
	replyPrefix = "confine-helper-reply: "
)

type probe struct {
	Op  string `json:"op"`
	Arg string `json:"arg,omitempty"`
}

type helperRequest struct {
	Spec Spec `json:"spec"`
	// NoConfine runs the probes without Apply: the control that shows a
	// probe can succeed, so its denial under confinement means something.
	NoConfine bool `json:"no_confine,omitempty"`
	// FakeABI, when non-zero, plans for this Landlock ABI instead of the
	// kernel's (it must not exceed the kernel's for Apply to work).
	FakeABI int `json:"fake_abi,omitempty"`
	// SeccompOnly installs the deny-list alone (after no_new_privs), so
	// that a refusal can only come from the filter: root keeps its
	// capabilities.
	SeccompOnly bool `json:"seccomp_only,omitempty"`
	// Report confines with ApplyReporting and sends the listener over
	// descriptor 3 (runReportingHelper).
	Report bool    `json:"report,omitempty"`
	Probes []probe `json:"probes"`
}

type helperReply struct {
	ApplyErr string   `json:"apply_err,omitempty"`
	Results  []string `json:"results"`
}

func TestHelperProcess(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		t.Skip("runs only as the re-executed helper of the confinement tests")
	}
	var req helperRequest
	reply := helperReply{}
	if err := json.Unmarshal([]byte(raw), &req); err != nil {
		reply.ApplyErr = "decode request: " + err.Error()
	} else if req.SeccompOnly {
		if err := seccompOnly(); err != nil {
			reply.ApplyErr = err.Error()
		}
	} else if !req.NoConfine {
		if err := confineHelper(req); err != nil {
			reply.ApplyErr = err.Error()
		}
	}
	for _, p := range req.Probes {
		reply.Results = append(reply.Results, runProbe(p))
	}
	out, _ := json.Marshal(reply)
	fmt.Printf("\n%s%s\n", replyPrefix, out)
	os.Exit(0) // skip the test framework's exit work: the process is confined
}

func confineHelper(req helperRequest) error {
	facts, err := detectKernel()
	if err != nil {
		return err
	}
	if req.FakeABI != 0 {
		facts.landlockABI = req.FakeABI
	}
	plan, err := buildPlan(req.Spec, facts)
	if err != nil {
		return err
	}
	if req.Report {
		return applyAndSendListener(plan)
	}
	return plan.Apply()
}

// runProbe performs one operation and names its outcome: "OK", the errno
// name, or for "status"/"ids" what was read.
func runProbe(p probe) string {
	switch p.Op {
	case "read":
		_, err := os.ReadFile(p.Arg)
		return outcome(err)
	case "create":
		f, err := os.OpenFile(p.Arg, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			f.Close()
		}
		return outcome(err)
	case "rename", "link":
		from, to, _ := strings.Cut(p.Arg, "|")
		if p.Op == "rename" {
			return outcome(os.Rename(from, to))
		}
		return outcome(os.Link(from, to))
	case "exec":
		err := inheritStdio(exec.Command(p.Arg)).Run()
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return "OK" // it ran
		}
		return outcome(err)
	case "clone-newuser":
		// Go's os/exec uses clone(2) (not clone3) for these flags; a
		// permitted clone would fail later, at execve, with ENOENT.
		cmd := inheritStdio(exec.Command("/nonexistent-mcpjail-probe"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER}
		return outcome(cmd.Run())
	case "connect", "bind", "fastopen":
		return tcpProbe(p.Op, p.Arg)
	case "tiocsti", "tioclinux":
		return terminalIoctlProbe(p.Op)
	case "listen": // without bind: the kernel picks the port
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return outcome(err)
		}
		defer unix.Close(fd)
		return outcome(unix.Listen(fd, 1))
	case "abstract-connect":
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return outcome(err)
		}
		defer unix.Close(fd)
		return outcome(unix.Connect(fd, &unix.SockaddrUnix{Name: "@" + p.Arg}))
	case "mptcp":
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, ipprotoMPTCP)
		if err == nil {
			unix.Close(fd)
		}
		return outcome(err)
	case "socket", "socketpair":
		return socketProbe(p.Op, p.Arg)
	case "reporting-twice":
		return reportingTwiceProbe(p.Arg == "degraded")
	case "kill":
		pid, _ := strconv.Atoi(p.Arg)
		return outcome(unix.Kill(pid, 0))
	case "status":
		return procStatus()
	case "ids":
		ruid, euid, suid := unix.Getresuid()
		rgid, egid, sgid := unix.Getresgid()
		groups, _ := unix.Getgroups()
		return fmt.Sprintf("uid=%d/%d/%d gid=%d/%d/%d groups=%v", ruid, euid, suid, rgid, egid, sgid, groups)
	case "nnp":
		v, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
		if err != nil {
			return outcome(err)
		}
		return strconv.Itoa(v)
	}
	return rawSyscallProbe(p.Op)
}

// inheritStdio passes the helper's own descriptors: left nil, os/exec
// would open /dev/null, which the test policy does not grant.
func inheritStdio(cmd *exec.Cmd) *exec.Cmd {
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stderr, os.Stderr
	return cmd
}

// rawSyscallProbe makes calls with arguments the kernel itself rejects
// with another errno (or accepts), so EPERM/ENOSYS can only come from the
// seccomp filter.
func rawSyscallProbe(op string) string {
	var errno syscall.Errno
	switch op {
	case "bpf": // unknown command: EINVAL from the kernel
		_, _, errno = unix.Syscall(unix.SYS_BPF, 0xffff, 0, 0)
	case "ptrace": // attach to a pid that cannot exist: ESRCH
		_, _, errno = unix.Syscall(unix.SYS_PTRACE, unix.PTRACE_ATTACH, 1<<30, 0)
	case "io_uring_setup": // no parameters: EFAULT (or EINVAL)
		_, _, errno = unix.Syscall(unix.SYS_IO_URING_SETUP, 0, 0, 0)
	case "mount": // empty target: ENOENT
		src, tgt := []byte("none\x00"), []byte("\x00")
		_, _, errno = unix.Syscall6(unix.SYS_MOUNT, uintptr(unsafe.Pointer(&src[0])), uintptr(unsafe.Pointer(&tgt[0])), 0, 0, 0, 0)
	case "unshare-newuser": // a multi-threaded process: EINVAL
		_, _, errno = unix.Syscall(unix.SYS_UNSHARE, unix.CLONE_NEWUSER, 0, 0)
	case "clone3": // size 0: EINVAL
		_, _, errno = unix.Syscall(unix.SYS_CLONE3, 0, 0, 0)
	default:
		return "unknown probe " + op
	}
	if errno == 0 {
		return "OK"
	}
	return unix.ErrnoName(errno)
}

func tcpProbe(op, portStr string) string {
	port, _ := strconv.Atoi(portStr)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return outcome(err)
	}
	defer unix.Close(fd)
	addr := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
	switch op {
	case "bind":
		return outcome(unix.Bind(fd, addr))
	case "fastopen": // connects from sendto, without connect(2)
		return outcome(unix.Sendto(fd, []byte("x"), unix.MSG_FASTOPEN, addr))
	}
	return outcome(unix.Connect(fd, addr))
}

// procStatus returns the capability, no_new_privs and seccomp lines of the
// calling thread's status, e.g. "CapInh=0000000000000000 ... Seccomp=2":
// the thread Apply confined (it stays locked), which would make the execve.
func procStatus() string {
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		return outcome(err)
	}
	var fields []string
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch k {
		case "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp":
			fields = append(fields, k+"="+strings.TrimSpace(v))
		}
	}
	return strings.Join(fields, " ")
}

func outcome(err error) string {
	if err == nil {
		return "OK"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	return err.Error()
}

// runHelper starts the helper with req and returns its reply.
func runHelper(t *testing.T, req helperRequest) helperReply {
	t.Helper()
	raw, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(raw))
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("helper: %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}
	for line := range strings.Lines(string(out)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), replyPrefix); ok {
			var reply helperReply
			if err := json.Unmarshal([]byte(rest), &reply); err != nil {
				t.Fatalf("helper reply %q: %v", rest, err)
			}
			if len(reply.Results) != len(req.Probes) {
				t.Fatalf("helper answered %d of %d probes (apply error %q)", len(reply.Results), len(req.Probes), reply.ApplyErr)
			}
			return reply
		}
	}
	t.Fatalf("helper printed no reply:\n%s", out)
	return helperReply{}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// terminalIoctlProbe makes a terminal ioctl on a pipe: the kernel answers
// ENOTTY, unless the filter refuses the request before any driver sees it.
func terminalIoctlProbe(op string) string {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return outcome(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	req, arg := uintptr(unix.TIOCSTI), byte('#')
	if op == "tioclinux" {
		req, arg = unix.TIOCLINUX, 0
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fds[0]), req, uintptr(unsafe.Pointer(&arg)))
	if errno != 0 {
		return outcome(errno)
	}
	return "OK"
}
