package confinement

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// LandlockStatus says whether the kernel offers Landlock at all.
type LandlockStatus string

const (
	LandlockEnabled LandlockStatus = "enabled"
	// LandlockDisabled: built in, but not in the boot's active LSM list (lsm=).
	LandlockDisabled LandlockStatus = "disabled"
	// LandlockAbsent: the kernel has no Landlock (CONFIG_SECURITY_LANDLOCK=n
	// or older than 5.13).
	LandlockAbsent LandlockStatus = "absent"
	// LandlockUnknown: the version query failed for another reason.
	LandlockUnknown LandlockStatus = "unknown"
)

// LandlockKnownABI is the newest ABI whose rights this file names: the
// newest that go-landlock (which the jail uses) knows.
const LandlockKnownABI = 11

// LandlockErrataSignalScope is errata bit 2, the fix for signal scoping across
// threads. Without it go-landlock, and so the jail, uses ABI 6+ kernels as 5.
const LandlockErrataSignalScope = 0x2

// LandlockInfo is what the kernel's Landlock offers.
type LandlockInfo struct {
	Status LandlockStatus `json:"status"`
	// ABI is the version the kernel reports, 0 when not enabled.
	ABI int `json:"abi"`
	// UsableABI is the ABI the jail uses: ABI, lowered to 5 when the signal
	// scoping erratum is unfixed and capped at LandlockKnownABI.
	UsableABI int `json:"usable_abi"`
	// FS, Net and Scopes name the access rights and scopes UsableABI can
	// restrict (kernel names without the LANDLOCK_ACCESS_ prefix, lower case).
	FS     []string `json:"fs,omitempty"`
	Net    []string `json:"net,omitempty"`
	Scopes []string `json:"scopes,omitempty"`
	// RestrictSelfFlags are landlock_restrict_self flags that ABI accepts.
	RestrictSelfFlags []string `json:"restrict_self_flags,omitempty"`
	// Errata is the kernel's bitmask of fixed Landlock errata (0 when the
	// kernel predates the query).
	Errata uint64 `json:"errata,omitempty"`
	// Error is the errno text when Status is not enabled.
	Error string `json:"error,omitempty"`
}

// landlockRight is an access right, scope or flag and the ABI that added it.
type landlockRight struct {
	name string
	abi  int
}

var landlockFSRights = []landlockRight{
	{"execute", 1}, {"write_file", 1}, {"read_file", 1}, {"read_dir", 1},
	{"remove_dir", 1}, {"remove_file", 1}, {"make_char", 1}, {"make_dir", 1},
	{"make_reg", 1}, {"make_sock", 1}, {"make_fifo", 1}, {"make_block", 1},
	{"make_sym", 1}, {"refer", 2}, {"truncate", 3}, {"ioctl_dev", 5},
	{"resolve_unix", 9},
}

var landlockNetRights = []landlockRight{
	{"bind_tcp", 4}, {"connect_tcp", 4}, {"bind_udp", 10}, {"connect_send_udp", 10},
}

var landlockScopes = []landlockRight{{"abstract_unix_socket", 6}, {"signal", 6}}

var landlockRestrictSelfFlags = []landlockRight{
	{"log_same_exec_off", 7}, {"log_new_exec_on", 7}, {"log_subdomains_off", 7},
	{"tsync", 8}, {"no_new_privs", 11},
}

// LandlockRights returns the filesystem rights, network rights, scopes and
// restrict_self flags that Landlock ABI abi can use.
func LandlockRights(abi int) (fs, net, scopes, flags []string) {
	pick := func(all []landlockRight) []string {
		var out []string
		for _, r := range all {
			if r.abi <= abi {
				out = append(out, r.name)
			}
		}
		return out
	}
	return pick(landlockFSRights), pick(landlockNetRights), pick(landlockScopes), pick(landlockRestrictSelfFlags)
}

// ProbeLandlock asks the kernel for its Landlock ABI version with
// landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION).
func ProbeLandlock() LandlockInfo {
	abi, errno := landlockQuery(unix.LANDLOCK_CREATE_RULESET_VERSION)
	var errata uint64
	if errno == 0 {
		// Kernels before the errata query reject the flag with EINVAL:
		// that means no errata are reported, which is not a failure.
		if e, errno := landlockQuery(unix.LANDLOCK_CREATE_RULESET_ERRATA); errno == 0 {
			errata = uint64(e)
		}
	}
	return LandlockInfoFrom(int(abi), errata, errno)
}

// usableLandlockABI applies go-landlock's downgrade rules to the kernel's ABI.
func usableLandlockABI(abi int, errata uint64) int {
	if abi >= 6 && errata&LandlockErrataSignalScope == 0 {
		abi = 5
	}
	return min(abi, LandlockKnownABI)
}

// RawLandlockABI returns the kernel's answer to the version query unchanged,
// for cross-checking ProbeLandlock.
func RawLandlockABI() (int, error) {
	abi, errno := landlockQuery(unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		return 0, fmt.Errorf("landlock_create_ruleset version query: %w", errno)
	}
	return int(abi), nil
}

func landlockQuery(flag uintptr) (uintptr, unix.Errno) {
	r, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, flag)
	return r, errno
}

// LandlockInfoFrom interprets the version query's result: ENOSYS means no
// Landlock in the kernel, EOPNOTSUPP means built in but disabled at boot.
func LandlockInfoFrom(abi int, errata uint64, errno unix.Errno) LandlockInfo {
	switch {
	case errno == 0 && abi > 0:
		usable := usableLandlockABI(abi, errata)
		fs, net, scopes, flags := LandlockRights(usable)
		return LandlockInfo{Status: LandlockEnabled, ABI: abi, UsableABI: usable, Errata: errata,
			FS: fs, Net: net, Scopes: scopes, RestrictSelfFlags: flags}
	case errno == 0:
		return LandlockInfo{Status: LandlockUnknown, Error: fmt.Sprintf("kernel reported ABI %d", abi)}
	case errors.Is(errno, unix.ENOSYS):
		return LandlockInfo{Status: LandlockAbsent, Error: errno.Error()}
	case errors.Is(errno, unix.EOPNOTSUPP):
		return LandlockInfo{Status: LandlockDisabled, Error: errno.Error()}
	default:
		return LandlockInfo{Status: LandlockUnknown, Error: errno.Error()}
	}
}

// Describe explains a non-enabled status in words an operator can act on.
func (l LandlockInfo) Describe() string {
	switch l.Status {
	case LandlockEnabled:
		if l.UsableABI == l.ABI {
			return fmt.Sprintf("ABI %d", l.ABI)
		}
		if l.ABI >= 6 && l.UsableABI == 5 {
			return fmt.Sprintf("ABI %d, usable as 5 (signal scoping erratum not fixed)", l.ABI)
		}
		return fmt.Sprintf("ABI %d, usable as %d (newest mcpjail knows)", l.ABI, l.UsableABI)
	case LandlockDisabled:
		return "disabled at boot (add landlock to the lsm= kernel parameter)"
	case LandlockAbsent:
		return "not enabled in this kernel"
	default:
		return "unknown (" + l.Error + ")"
	}
}
