package bpf

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// userfaultfd ioctls (linux/userfaultfd.h), which x/sys/unix lacks:
// _IOWR(0xAA, nr, size) for struct uffdio_api (24 bytes) and struct
// uffdio_register (32 bytes).
const (
	uffdAPI                   = 0xAA
	uffdioAPI                 = 0xc018aa3f
	uffdioRegister            = 0xc020aa00
	uffdioRegisterModeMissing = 1
)

type uffdioAPIArg struct{ api, features, ioctls uint64 }

type uffdioRegisterArg struct{ start, len, mode, ioctls uint64 }

// newUserfaultfd opens a userfaultfd that also catches the kernel's own
// faults on registered pages (which needs CAP_SYS_PTRACE, or
// vm.unprivileged_userfaultfd=1).
func newUserfaultfd() (int, error) {
	fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC, 0, 0)
	if errno != 0 {
		return -1, fmt.Errorf("userfaultfd: %w", errno)
	}
	api := uffdioAPIArg{api: uffdAPI}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, uffdioAPI, uintptr(unsafe.Pointer(&api))); errno != 0 {
		unix.Close(int(fd))
		return -1, fmt.Errorf("UFFDIO_API: %w", errno)
	}
	return int(fd), nil
}

// socketpairStuck makes a socketpair whose result goes to a page that a
// userfaultfd holds and nobody serves: the kernel's write of the two fds
// faults and the thread waits inside the syscall, between its sys_enter
// and its sys_exit, until it is killed.
func socketpairStuck() error {
	uffd, err := newUserfaultfd()
	if err != nil {
		return err
	}
	size := os.Getpagesize()
	page, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	reg := uffdioRegisterArg{start: uint64(uintptr(unsafe.Pointer(&page[0]))), len: uint64(size), mode: uffdioRegisterModeMissing}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(uffd), uffdioRegister, uintptr(unsafe.Pointer(&reg))); errno != 0 {
		return fmt.Errorf("UFFDIO_REGISTER: %w", errno)
	}
	_, _, errno := unix.Syscall6(unix.SYS_SOCKETPAIR, unix.AF_UNIX, unix.SOCK_STREAM, 0,
		uintptr(unsafe.Pointer(&page[0])), 0, 0)
	return fmt.Errorf("socketpair returned: %w", errno)
}

// TestJailClosePurgesPending checks that closing a jail while one of its
// threads sits inside socketpair, with sockwatch.bpf.c's marker saved at
// sys_enter, removes that marker, which no program would remove once the
// jail is gone.
func TestJailClosePurgesPending(t *testing.T) {
	requireKernel(t)
	if fd, err := newUserfaultfd(); err != nil {
		skipOrFail(t, fmt.Sprintf("the test holds a thread inside a syscall with a userfaultfd: %v", err))
	} else {
		unix.Close(fd)
	}
	l := newLoader(t)
	grp := newGroup(t)
	j, err := l.Register(grp.ID(), grp.V2Path(), loopbackPolicy(1))
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	defer j.Close()
	spec, err := json.Marshal(watchRequest{Steps: []watchStep{{Op: "stuck socketpair"}}})
	if err != nil {
		t.Fatal(err)
	}
	fd, err := grp.OpenV2()
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envWatchHelper+"="+string(spec))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(fd.Fd())}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		// SIGKILL ends the wait for the page; the thread's exit removes
		// whatever marker is left (task.bpf.c).
		_ = cmd.Process.Kill()
		var ee *exec.ExitError
		if err := <-done; !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("helper: %v, want killed by SIGKILL while stuck", err)
		}
	}()

	// Wait for the helper to be stuck in socketpair: its marker appears.
	deadline := time.Now().Add(hangBound)
	for pendingEntries(t, l) == 0 {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("the helper exited before its socketpair got stuck: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no socket marker while the helper is stuck in socketpair")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("Jail.Close: %v", err)
	}
	if n := pendingEntries(t, l); n != 0 {
		t.Errorf("%d socket markers left after Jail.Close", n)
	}
}
