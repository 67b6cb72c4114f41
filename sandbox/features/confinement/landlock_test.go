package confinement

import (
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func TestLandlockRightsPerABI(t *testing.T) {
	for _, tc := range []struct {
		abi         int
		fsLen       int
		has, hasNot []string // across fs, net, scopes and flags
	}{
		{abi: 0, fsLen: 0, hasNot: []string{"execute"}},
		{abi: 1, fsLen: 13, has: []string{"execute", "make_sym"}, hasNot: []string{"refer", "bind_tcp"}},
		{abi: 2, fsLen: 14, has: []string{"refer"}, hasNot: []string{"truncate"}},
		{abi: 3, fsLen: 15, has: []string{"truncate"}, hasNot: []string{"connect_tcp"}},
		{abi: 4, fsLen: 15, has: []string{"bind_tcp", "connect_tcp"}, hasNot: []string{"ioctl_dev"}},
		{abi: 5, fsLen: 16, has: []string{"ioctl_dev"}, hasNot: []string{"signal"}},
		{abi: 6, fsLen: 16, has: []string{"abstract_unix_socket", "signal"}, hasNot: []string{"log_new_exec_on"}},
		{abi: 7, fsLen: 16, has: []string{"log_same_exec_off", "log_new_exec_on", "log_subdomains_off"}, hasNot: []string{"tsync"}},
		{abi: 9, fsLen: 17, has: []string{"resolve_unix", "tsync"}, hasNot: []string{"bind_udp"}},
		{abi: 11, fsLen: 17, has: []string{"bind_udp", "connect_send_udp", "no_new_privs"}},
	} {
		fs, net, scopes, flags := LandlockRights(tc.abi)
		all := slices.Concat(fs, net, scopes, flags)
		if len(fs) != tc.fsLen {
			t.Errorf("ABI %d: %d fs rights %v, want %d", tc.abi, len(fs), fs, tc.fsLen)
		}
		for _, r := range tc.has {
			if !slices.Contains(all, r) {
				t.Errorf("ABI %d lacks %s", tc.abi, r)
			}
		}
		for _, r := range tc.hasNot {
			if slices.Contains(all, r) {
				t.Errorf("ABI %d has %s, added later", tc.abi, r)
			}
		}
	}
}

func TestLandlockInfoFrom(t *testing.T) {
	const fixed = LandlockErrataSignalScope
	for _, tc := range []struct {
		name     string
		abi      int
		errata   uint64
		errno    unix.Errno
		status   LandlockStatus
		usable   int
		describe string
	}{
		{"ABI 7 with the fix", 7, fixed, 0, LandlockEnabled, 7, "ABI 7"},
		{"ABI 2", 2, 0, 0, LandlockEnabled, 2, "ABI 2"},
		{"ABI 6 without the signal fix", 6, 0, 0, LandlockEnabled, 5, "ABI 6, usable as 5 (signal scoping erratum not fixed)"},
		{"newer than known", 14, fixed, 0, LandlockEnabled, LandlockKnownABI, "ABI 14, usable as 11 (newest mcpjail knows)"},
		{"not in the kernel", 0, 0, unix.ENOSYS, LandlockAbsent, 0, "not enabled in this kernel"},
		{"disabled at boot", 0, 0, unix.EOPNOTSUPP, LandlockDisabled, 0, "disabled at boot (add landlock to the lsm= kernel parameter)"},
		{"other error", 0, 0, unix.EFAULT, LandlockUnknown, 0, "unknown (bad address)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := LandlockInfoFrom(tc.abi, tc.errata, tc.errno)
			if info.Status != tc.status || info.UsableABI != tc.usable || info.Describe() != tc.describe {
				t.Fatalf("got status %s usable %d %q, want %s %d %q",
					info.Status, info.UsableABI, info.Describe(), tc.status, tc.usable, tc.describe)
			}
			if tc.status == LandlockEnabled && info.ABI != tc.abi {
				t.Fatalf("ABI %d, want the kernel's %d", info.ABI, tc.abi)
			}
		})
	}
}
