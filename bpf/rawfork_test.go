package bpf

import (
	"fmt"
	"syscall"
)

// forkAndReap forks a child process (not a thread) that ends at once, with
// exit status status or, when sig is set, by sig; it waits for it and
// returns its pid.
func forkAndReap(status int, sig syscall.Signal) (int, error) {
	pid, errno := rawForkExit(status, sig)
	if errno != 0 {
		return 0, errno
	}
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wait for child %d: %w", pid, err)
		}
		break
	}
	if (sig == 0 && ws.ExitStatus() != status) || (sig != 0 && ws.Signal() != sig) {
		return 0, fmt.Errorf("child %d ended with %v, want status %d or signal %v", pid, ws, status, sig)
	}
	return pid, nil
}

// rawForkExit is fork(2) with a child that leaves at once. The child is a
// copy of one thread of the Go runtime and must never enter it: nosplit,
// raw syscalls only, no return.
//
//go:nosplit
func rawForkExit(status int, sig syscall.Signal) (int, syscall.Errno) {
	pid, _, errno := syscall.RawSyscall(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	if pid == 0 {
		if sig != 0 {
			self, _, _ := syscall.RawSyscall(syscall.SYS_GETPID, 0, 0, 0)
			syscall.RawSyscall(syscall.SYS_KILL, self, uintptr(sig), 0)
		}
		for {
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, uintptr(status), 0, 0)
		}
	}
	return int(pid), 0
}
