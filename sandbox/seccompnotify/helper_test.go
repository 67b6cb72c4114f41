package seccompnotify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The kernel tests re-execute the test binary as a helper that installs a
// small filter (bpf(2) is refused or notified, everything else allowed),
// hands the listener to the test over descriptor 3, makes its calls and
// prints a helperReply. A filter cannot be removed, hence the process.

const helperEnv = "MCPJAIL_SECCOMPNOTIFY_HELPER"

type helperReply struct {
	Errnos    map[string]int `json:"errnos"`
	ElapsedNS int64          `json:"elapsed_ns"`
	Err       string         `json:"err,omitempty"`
}

func init() {
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(helperMain(spec))
	}
}

// helperMain runs "FILTER CALL N": N calls of CALL (bpf, which the filter
// refuses, or getppid, which it allows) under FILTER: notify (bpf is
// notified and the listener sent), errno (bpf is refused with EPERM by
// the filter itself) or flood (notify, stopping at the first ENOSYS: the
// listener was closed).
func helperMain(spec string) int {
	var mode, call string
	var n int
	_, err := fmt.Sscanf(spec, "%s %s %d", &mode, &call, &n)
	nr := uintptr(unix.SYS_BPF)
	if call == "getppid" {
		nr = unix.SYS_GETPPID
	}
	reply := helperReply{Errnos: map[string]int{}}
	if err == nil {
		err = installHelperFilter(mode != "errno")
	}
	if err != nil {
		reply.Err = err.Error()
	} else {
		start := time.Now()
		for range n {
			_, _, errno := unix.Syscall(nr, 0xffff, 0, 0)
			reply.Errnos[unix.ErrnoName(errno)]++
			if mode == "flood" && errno == unix.ENOSYS {
				break
			}
		}
		reply.ElapsedNS = time.Since(start).Nanoseconds()
	}
	json.NewEncoder(os.Stdout).Encode(reply)
	return 0
}

// installHelperFilter refuses bpf(2) with EPERM, or notifies it and sends
// the listener over descriptor 3.
func installHelperFilter(notify bool) error {
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	action := uint32(unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM))
	flags := uintptr(unix.SECCOMP_FILTER_FLAG_TSYNC)
	if notify {
		action = unix.SECCOMP_RET_USER_NOTIF
		flags = unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
	}
	raw, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 0, Size: 4}, // seccomp_data.nr
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.SYS_BPF, SkipFalse: 1},
		bpf.RetConstant{Val: action},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW},
	})
	if err != nil {
		return err
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, ins := range raw {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	fd, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(filter)
	if errno != 0 {
		return fmt.Errorf("seccomp: %w", errno)
	}
	if !notify {
		return nil
	}
	listener := os.NewFile(fd, "listener")
	defer listener.Close()
	defer unix.Close(3)
	return SendListener(3, listener, "")
}

// helper is a started helper process and the listener it sent.
type helper struct {
	cmd      *exec.Cmd
	stdout   bytes.Buffer
	listener *Listener
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (CI=true: a missing prerequisite is a failure)")
	}
	t.Skip("this test needs root (skipped: CI is not true)")
}

// startHelper starts the helper with a filter mode (see helperMain) for n
// bpf calls; with a listener it waits for it.
func startHelper(t testing.TB, mode string, n int) *helper {
	return startHelperCalling(t, mode, "bpf", n)
}

func startHelperCalling(t testing.TB, mode, call string, n int) *helper {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "theirs")
	defer ours.Close()
	h := &helper{cmd: exec.Command(os.Args[0], "-test.run=^$")}
	h.cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %d", helperEnv, mode, call, n))
	h.cmd.ExtraFiles = []*os.File{theirs}
	h.cmd.Stdout, h.cmd.Stderr = &h.stdout, os.Stderr
	err = h.cmd.Start()
	theirs.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if h.cmd.ProcessState == nil {
			h.cmd.Process.Kill()
			h.cmd.Wait()
		}
	})
	if mode == "errno" {
		return h
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, missing, err := ReceiveListener(ctx, ours)
	if err != nil || l == nil {
		t.Fatalf("receive the helper's listener: %v (missing %q)", err, missing)
	}
	h.listener = l
	return h
}

// wait waits for the helper and decodes its reply.
func (h *helper) wait(t testing.TB) helperReply {
	t.Helper()
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("helper: %v\n%s", err, h.stdout.String())
	}
	var r helperReply
	if err := json.Unmarshal(h.stdout.Bytes(), &r); err != nil || r.Err != "" {
		t.Fatalf("helper reply %q: %v %s", h.stdout.String(), err, r.Err)
	}
	return r
}

// waitPending waits until a notification waits on the listener.
func waitPending(t testing.TB, l *Listener) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !readable(l.fd()); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no notification arrived")
		}
	}
}
