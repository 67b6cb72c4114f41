// Package seccompnotify is the supervisor's side of mcpjail's seccomp
// deny-list. The jail's init step installs the list with
// SECCOMP_RET_USER_NOTIF for the calls that must be reported and hands the
// filter's listener to mcpjail (SendListener, ReceiveListener). Serve answers
// every notification with the list's errno, never letting the call run, and
// turns it into a Refusal; Reporter makes audit events of them with a bound
// on how many distinct ones a flood can write.
package seccompnotify

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// seccompData is struct seccomp_data: what the filter saw.
type seccompData struct {
	Nr                 int32
	Arch               uint32
	InstructionPointer uint64
	Args               [6]uint64
}

// notif is struct seccomp_notif. PID is the calling thread's id in the PID
// namespace of the process that receives the notification (the kernel's
// task_pid_vnr at SECCOMP_IOCTL_NOTIF_RECV), 0 when not visible there.
type notif struct {
	ID    uint64
	PID   uint32
	Flags uint32
	Data  seccompData
}

// notifResp is struct seccomp_notif_resp. Flags stays 0: never
// SECCOMP_USER_NOTIF_FLAG_CONTINUE, the call must not run.
type notifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// listenerName is what /proc/self/fd shows for a seccomp listener.
const listenerName = "anon_inode:seccomp notify"

// Listener is a seccomp filter's notification descriptor.
type Listener struct {
	f *os.File
}

// NewListener takes ownership of f after checking that it is a seccomp
// listener: the descriptor arrives from another process, and ioctls on
// anything else must not be attempted.
func NewListener(f *os.File) (*Listener, error) {
	link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("seccomp listener: %w", err)
	}
	if link != listenerName {
		f.Close()
		return nil, fmt.Errorf("seccomp listener: descriptor is %q, not a seccomp listener", link)
	}
	return &Listener{f: f}, nil
}

// Close closes the listener: from then on the kernel fails every notified
// call of the filter with ENOSYS, pending ones included. The calls stay
// refused; only their events are gone.
func (l *Listener) Close() error { return l.f.Close() }

func (l *Listener) fd() int { return int(l.f.Fd()) }

// recv takes the next notification. The kernel insists on a zeroed buffer.
func (l *Listener) recv(n *notif) error {
	*n = notif{}
	return ioctl(l.fd(), unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(n))
}

// refuse answers notification id with -errno: the call returns errno
// without running. ENOENT means the caller is no longer waiting (it died,
// or a signal interrupted the call, which then starts over as a new
// notification).
func (l *Listener) refuse(id uint64, errno unix.Errno) error {
	resp := notifResp{ID: id, Error: -int32(errno)}
	return ioctl(l.fd(), unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(&resp))
}

// syncWakeUp asks the kernel (6.6 and later) to hand each notification to
// this process and each answer back to the caller as a synchronous switch
// on the same CPU, instead of waking the other side on another CPU: the
// caller waits for the answer anyway. Older kernels refuse (EINVAL), and
// notifications work the same, only slower.
func (l *Listener) syncWakeUp() {
	_, _, _ = unix.Syscall(unix.SYS_IOCTL, uintptr(l.fd()), unix.SECCOMP_IOCTL_NOTIF_SET_FLAGS, unix.SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
}

func ioctl(fd int, req uint, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}

// waitReadable blocks until fd is readable (or hung up) or stop is. It
// reports fd's poll events, and whether stop fired; both can be set.
func waitReadable(fd, stop int) (revents int16, stopped bool, err error) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(stop), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, false, fmt.Errorf("poll: %w", err)
		}
		if fds[0].Revents != 0 || fds[1].Revents != 0 {
			return fds[0].Revents, fds[1].Revents != 0, nil
		}
	}
}

// readable reports whether fd has something to read right now.
func readable(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&unix.POLLIN != 0
}
