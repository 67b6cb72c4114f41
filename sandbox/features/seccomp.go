package features

import (
	"errors"
	"fmt"

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
