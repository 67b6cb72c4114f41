package confinement

import (
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func TestKernelLandlockMatchesSyscall(t *testing.T) {
	raw, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	info := ProbeLandlock()
	switch {
	case errno == 0:
		if info.Status != LandlockEnabled || info.ABI != int(raw) {
			t.Fatalf("kernel says ABI %d, probe says %s ABI %d", raw, info.Status, info.ABI)
		}
		if fs, _, _, _ := LandlockRights(info.UsableABI); !slices.Equal(info.FS, fs) {
			t.Fatalf("fs rights %v do not match usable ABI %d", info.FS, info.UsableABI)
		}
	case errno == unix.ENOSYS:
		if info.Status != LandlockAbsent {
			t.Fatalf("kernel says ENOSYS, probe says %s", info.Status)
		}
	case errno == unix.EOPNOTSUPP:
		if info.Status != LandlockDisabled {
			t.Fatalf("kernel says EOPNOTSUPP, probe says %s", info.Status)
		}
	default:
		t.Fatalf("version query failed: %v", errno)
	}
	if expectHost() && (info.ABI != 7 || info.UsableABI != 7) {
		t.Fatalf("host has Landlock ABI 7, probe says ABI %d usable %d", info.ABI, info.UsableABI)
	}
}
