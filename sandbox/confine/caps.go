package confine

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"

	"github.com/mcpjail/mcpjail/sandbox/features/confinement"
)

// Capabilities and no_new_privs are per thread in Linux. A Go process has
// many threads, so every change below goes through psx, which runs the
// system call on all of them (libpsx with cgo, AllThreadsSyscall without).

// Securebits from <linux/securebits.h> (x/sys/unix does not export them).
const (
	secbitNoRoot                  = 1 << 0
	secbitNoRootLocked            = 1 << 1
	secbitKeepCapsLocked          = 1 << 5 // with keep-caps off: uid changes always drop capabilities
	secbitNoCapAmbientRaise       = 1 << 6
	secbitNoCapAmbientRaiseLocked = 1 << 7
)

// rootSecurebits makes uid 0 ordinary for capabilities, for good: execve as
// root grants nothing and ambient capabilities can never be raised again.
const rootSecurebits = secbitNoRoot | secbitNoRootLocked | secbitKeepCapsLocked |
	secbitNoCapAmbientRaise | secbitNoCapAmbientRaiseLocked

func allThreadsPrctl(option, arg2, arg3 uintptr) error {
	if _, _, errno := psx.Syscall6(unix.SYS_PRCTL, option, arg2, arg3, 0, 0, 0); errno != 0 {
		return errno
	}
	return nil
}

// lockRootPrivileges sets rootSecurebits on every thread and empties the
// calling thread's bounding set. Both need CAP_SETPCAP, so this runs before
// credentials change. The bounding set only limits what an execve can grant,
// and the execve that follows Apply is made by this thread (locked to it),
// whose credentials the new program keeps while the execve ends every other
// thread: one prctl per capability here, instead of one all-thread round
// (a signal to each thread) per capability, ~2 ms at every start.
func lockRootPrivileges(lastCap int) error {
	if err := allThreadsPrctl(unix.PR_SET_SECUREBITS, rootSecurebits, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_SECUREBITS): %w", err)
	}
	for c := 0; c <= lastCap; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("prctl(PR_CAPBSET_DROP, %d): %w", c, err)
		}
	}
	return nil
}

// clearCapabilities empties the ambient, permitted, effective and
// inheritable sets. Dropping needs no privilege.
func clearCapabilities() error { return keepCapabilities(0) }

// KeepOnly sets no_new_privs and reduces every thread's permitted and
// effective capabilities to keep (a mask of CAP_* bits), clearing the
// inheritable and ambient sets. The init step's PID 1, which only waits and
// relays signals, keeps CAP_KILL this way.
func KeepOnly(keep uint64) error {
	if err := setNoNewPrivs(); err != nil {
		return err
	}
	return keepCapabilities(keep)
}

func keepCapabilities(keep uint64) error {
	if err := allThreadsPrctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); err != nil {
		return fmt.Errorf("prctl(PR_CAP_AMBIENT_CLEAR_ALL): %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	// Version 3: two 32-bit halves.
	data := [2]unix.CapUserData{
		{Effective: uint32(keep), Permitted: uint32(keep)},
		{Effective: uint32(keep >> 32), Permitted: uint32(keep >> 32)},
	}
	_, _, errno := psx.Syscall3(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	runtime.KeepAlive(&hdr)
	runtime.KeepAlive(&data)
	if errno != 0 {
		return fmt.Errorf("capset to %#x: %w", keep, errno)
	}
	return nil
}

func setNoNewPrivs() error {
	if err := allThreadsPrctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	return nil
}

// verifyNoPrivileges checks, on the calling thread (the one that will
// execve), that the steps above took effect: fail closed rather than trust
// return codes alone.
func verifyNoPrivileges(lastCap int, boundingDropped bool) error {
	sets, err := confinement.ThreadCapabilities()
	if err != nil {
		return err
	}
	if sets.Permitted|sets.Effective|sets.Inheritable != 0 {
		return fmt.Errorf("capabilities remain: permitted %#x effective %#x inheritable %#x",
			sets.Permitted, sets.Effective, sets.Inheritable)
	}
	for c := 0; c <= lastCap; c++ {
		amb, err := unix.PrctlRetInt(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_IS_SET, uintptr(c), 0, 0)
		if err != nil {
			return fmt.Errorf("prctl(PR_CAP_AMBIENT_IS_SET, %d): %w", c, err)
		}
		if amb != 0 {
			return fmt.Errorf("ambient capability %d remains", c)
		}
		if !boundingDropped {
			continue
		}
		inBounding, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if err != nil {
			return fmt.Errorf("prctl(PR_CAPBSET_READ, %d): %w", c, err)
		}
		if inBounding != 0 {
			return fmt.Errorf("capability %d remains in the bounding set", c)
		}
	}
	nnp, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	if err != nil {
		return fmt.Errorf("prctl(PR_GET_NO_NEW_PRIVS): %w", err)
	}
	if nnp != 1 {
		return fmt.Errorf("no_new_privs is %d after setting it", nnp)
	}
	return nil
}
