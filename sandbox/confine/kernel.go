package confine

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// kernelFacts is what the plan depends on, measured once by detectKernel.
type kernelFacts struct {
	landlockABI int  // 0: no Landlock
	seccomp     bool // seccomp filters are available
	lastCap     int  // highest capability number this kernel knows
	canSetPCap  bool // CAP_SETPCAP is effective: bounding set and securebits can change
	canSetIDs   bool // CAP_SETUID and CAP_SETGID are effective
}

// landlockErrataSignalScope is errata bit 2: the fix for signal scoping
// across threads. go-landlock treats a kernel without it as ABI 5, and so
// must we, or our ABI 6 config would be refused by go-landlock.
const landlockErrataSignalScope = 0x2

func detectKernel() (kernelFacts, error) {
	var k kernelFacts
	abi, err := detectLandlockABI()
	if err != nil {
		return k, err
	}
	k.landlockABI = abi
	if k.seccomp, err = seccompAvailable(); err != nil {
		return k, err
	}
	if k.lastCap, err = readLastCap(); err != nil {
		return k, err
	}
	eff, err := effectiveCaps()
	if err != nil {
		return k, err
	}
	k.canSetPCap = eff&(1<<unix.CAP_SETPCAP) != 0
	k.canSetIDs = eff&(1<<unix.CAP_SETUID) != 0 && eff&(1<<unix.CAP_SETGID) != 0
	return k, nil
}

// detectLandlockABI asks the kernel with
// landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION).
func detectLandlockABI() (int, error) {
	v, err := llsys.LandlockGetABIVersion()
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
		return 0, nil // not built in, or not enabled at boot
	}
	if err != nil {
		return 0, fmt.Errorf("landlock ABI version: %w", err)
	}
	if v >= 6 {
		errata, err := llsys.LandlockGetErrata()
		if err != nil || errata&landlockErrataSignalScope == 0 {
			v = 5
		}
	}
	if v >= len(abiConfigs) {
		v = len(abiConfigs) - 1 // newer than go-landlock knows: use what it knows
	}
	return v, nil
}

// seccompAvailable: PR_GET_SECCOMP fails with EINVAL when the kernel has no
// seccomp at all.
func seccompAvailable() (bool, error) {
	_, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
	if errors.Is(err, unix.EINVAL) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("prctl(PR_GET_SECCOMP): %w", err)
	}
	return true, nil
}

func readLastCap() (int, error) {
	const path = "/proc/sys/kernel/cap_last_cap"
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 || n > 63 {
		return 0, fmt.Errorf("read %s: unexpected content %q", path, b)
	}
	return n, nil
}
