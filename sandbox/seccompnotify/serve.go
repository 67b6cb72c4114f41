package seccompnotify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Rule is how the supervisor answers one notified system call: with Errno,
// as the deny-list would have without a supervisor.
type Rule struct {
	Name   string
	Errno  syscall.Errno
	Reason string
}

// Refusal is one call the deny-list refused, as the supervisor saw it.
type Refusal struct {
	// PID is the calling process (thread group) and TID the calling thread,
	// in the supervisor's PID namespace. PID is TID when the process could
	// not be read.
	PID, TID int
	// Comm is the calling thread's name ("" when it could not be read).
	Comm    string
	Syscall string
	// Target is the call's name with its decoded arguments, e.g.
	// "ptrace PTRACE_ATTACH pid 7". Arguments are read from the registers
	// the filter saw, never from the caller's memory.
	Target string
	Errno  syscall.Errno
	// Reason is why the deny-list refuses the call.
	Reason string
}

// Serve answers the listener's notifications until ctx ends or no task uses
// the filter any more, and closes the listener when it returns. Each call is
// refused with its rule's errno (EPERM for a call without a rule: the filter
// only notifies what the deny-list refuses) and then reported, unless the
// caller stopped waiting before the answer (see Listener.refuse): a call a
// signal restarted is reported when it is answered (on 6.1 an answer that
// races the signal is dropped by the kernel and the restarted call is
// reported again, seen in the VM's flood test), and the last call
// of a task killed while waiting is not reported. When ctx ends, what is
// pending is still answered and reported. An error (the listener failed)
// also closes it, so that no call waits for an answer that cannot come.
func Serve(ctx context.Context, l *Listener, rules map[int]Rule, report func(Refusal)) error {
	defer l.Close()
	l.syncWakeUp()
	stop, release, err := stopOnDone(ctx)
	if err != nil {
		return err
	}
	defer release()
	var sc scratch
	for {
		revents, stopped, err := waitReadable(l.fd(), stop)
		if err != nil {
			return fmt.Errorf("seccomp listener: %w", err)
		}
		if stopped {
			return drain(l, &sc, rules, report)
		}
		if revents&unix.POLLIN == 0 {
			// POLLHUP without POLLIN: every task of the filter is gone.
			return nil
		}
		if _, err := handle(l, &sc, rules, report); err != nil {
			return err
		}
	}
}

// drain answers the calls waiting when Serve was stopped. A thread that
// comes back with another call is still running (a descendant that outlived
// the server) and could keep this going forever: it is answered, and the
// drain ends; its next calls fail with ENOSYS once the listener is closed.
func drain(l *Listener, sc *scratch, rules map[int]Rule, report func(Refusal)) error {
	answered := map[int]bool{}
	for readable(l.fd()) {
		tid, err := handle(l, sc, rules, report)
		if err != nil {
			return err
		}
		if answered[tid] {
			return nil
		}
		answered[tid] = true
	}
	return nil
}

// handle receives one notification, answers it and reports it; it returns
// the calling thread (0 when there was none). The caller's name and process
// are read while it waits for the answer: a successful answer proves it
// waited all along, so its id was not reused meanwhile.
func handle(l *Listener, sc *scratch, rules map[int]Rule, report func(Refusal)) (int, error) {
	n := &sc.n
	if err := l.recv(n); err != nil {
		if errors.Is(err, unix.ENOENT) { // the caller went away before we looked
			return 0, nil
		}
		return 0, fmt.Errorf("seccomp listener: receive: %w", err)
	}
	rule, ok := rules[int(n.Data.Nr)]
	if !ok {
		rule = Rule{Name: "syscall " + strconv.Itoa(int(n.Data.Nr)), Errno: unix.EPERM, Reason: "not on the deny-list mcpjail knows"}
	}
	r := Refusal{PID: int(n.PID), TID: int(n.PID), Syscall: rule.Name, Errno: rule.Errno, Reason: rule.Reason,
		Target: Describe(rule.Name, n.Data.Args)}
	if n.PID != 0 {
		r.Comm, r.PID = task(r.TID, sc.status[:])
	}
	if err := l.refuse(n.ID, rule.Errno); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return r.TID, nil
		}
		return r.TID, fmt.Errorf("seccomp listener: answer: %w", err)
	}
	report(r)
	return r.TID, nil
}

// scratch is Serve's memory for one notification at a time.
type scratch struct {
	n      notif
	status [1024]byte // the head of /proc/<tid>/status, where Name and Tgid are
}

// task reads a thread's name and process id from /proc/<tid>/status, with
// plain system calls: os.ReadFile costs several times more, and this runs
// for every refused call. The process id falls back to tid.
func task(tid int, buf []byte) (comm string, pid int) {
	pid = tid
	fd, err := unix.Open("/proc/"+strconv.Itoa(tid)+"/status", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", pid
	}
	n, err := unix.Read(fd, buf)
	unix.Close(fd)
	if err != nil || n <= 0 {
		return "", pid
	}
	for line := range bytes.Lines(buf[:n]) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch string(k) {
		case "Name":
			comm = string(v)
		case "Tgid":
			if p, err := strconv.Atoi(string(v)); err == nil {
				pid = p
			}
			return comm, pid // Name comes first in the file
		}
	}
	return comm, pid
}

// stopOnDone returns an eventfd that becomes readable when ctx ends; release
// ends the watch and closes it.
func stopOnDone(ctx context.Context) (fd int, release func(), err error) {
	fd, err = unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return -1, nil, fmt.Errorf("eventfd: %w", err)
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-ctx.Done():
			_, _ = unix.Write(fd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
		case <-quit:
		}
	}()
	return fd, func() { close(quit); <-done; unix.Close(fd) }, nil
}
