package confinement

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SeccompAvailable reports whether the kernel accepts seccomp filters. It
// asks for filter mode with a NULL program, as seccomp(2) documents: the
// kernel reads the program first and fails with EFAULT when it has filters,
// EINVAL when it was built without CONFIG_SECCOMP_FILTER (or seccomp at
// all). Nothing is installed either way.
func SeccompAvailable() (bool, error) {
	_, err := unix.PrctlRetInt(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, 0, 0, 0)
	switch {
	case errors.Is(err, unix.EFAULT):
		return true, nil
	case errors.Is(err, unix.EINVAL):
		return false, nil
	case err == nil:
		// Impossible with a NULL program; never report it as available.
		return false, fmt.Errorf("prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, NULL) succeeded")
	default:
		return false, fmt.Errorf("prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, NULL): %w", err)
	}
}

// Sizes of the seccomp notification structures mcpjail's supervisor is
// written for (struct seccomp_notif, seccomp_notif_resp, seccomp_data of
// Linux 5.0 to today). The ioctl numbers encode them: a kernel that reports
// other sizes would refuse the ioctls, and a notified call would wait for an
// answer that never comes.
const (
	SeccompNotifSize     = 80
	SeccompNotifRespSize = 24
	SeccompDataSize      = 64
)

// seccompListenerFlags are the flags mcpjail installs a filter with when it
// wants the refusals reported: a listener, on every thread, where TSYNC_ESRCH
// (Linux 5.7) is what lets TSYNC and NEW_LISTENER go together.
const seccompListenerFlags = unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_TSYNC |
	unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH

// SeccompListener reports whether the kernel can hand a supervisor the
// refusals of a seccomp filter: SECCOMP_RET_USER_NOTIF, a listener together
// with TSYNC, and notification structures of the sizes mcpjail knows. When
// it cannot, why says what is missing. Nothing is installed: the filter flags
// are checked with a NULL program, which the kernel reads (EFAULT) only
// after it accepted the flags (EINVAL otherwise).
func SeccompListener() (ok bool, why string, err error) {
	action := uint32(unix.SECCOMP_RET_USER_NOTIF)
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&action)))
	switch errno {
	case 0:
	case unix.EOPNOTSUPP, unix.EINVAL, unix.ENOSYS:
		return false, "the kernel has no SECCOMP_RET_USER_NOTIF (Linux 5.0)", nil
	default:
		return false, "", fmt.Errorf("seccomp(GET_ACTION_AVAIL, USER_NOTIF): %w", errno)
	}
	_, _, errno = unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, seccompListenerFlags, 0)
	switch errno {
	case unix.EFAULT:
	case unix.EINVAL:
		return false, "the kernel cannot combine a seccomp listener with TSYNC (SECCOMP_FILTER_FLAG_TSYNC_ESRCH, Linux 5.7)", nil
	case 0:
		return false, "", errors.New("seccomp(SET_MODE_FILTER, NULL) succeeded")
	default:
		return false, "", fmt.Errorf("seccomp(SET_MODE_FILTER, NEW_LISTENER|TSYNC|TSYNC_ESRCH, NULL): %w", errno)
	}
	var sizes struct{ notif, resp, data uint16 }
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_NOTIF_SIZES, 0, uintptr(unsafe.Pointer(&sizes))); errno != 0 {
		return false, "", fmt.Errorf("seccomp(GET_NOTIF_SIZES): %w", errno)
	}
	if sizes.notif != SeccompNotifSize || sizes.resp != SeccompNotifRespSize || sizes.data != SeccompDataSize {
		return false, fmt.Sprintf("the kernel's seccomp notification structures have sizes %d/%d/%d, mcpjail knows %d/%d/%d",
			sizes.notif, sizes.resp, sizes.data, SeccompNotifSize, SeccompNotifRespSize, SeccompDataSize), nil
	}
	return true, "", nil
}
