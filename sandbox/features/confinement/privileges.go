package confinement

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// capabilityNames are the capabilities the jail's layers use: BPF and
// PERFMON to load programs, SYS_ADMIN for cgroups, mounts and older kernels'
// BPF, NET_ADMIN for cgroup network hooks, SYS_RESOURCE for rlimits.
var capabilityNames = []struct {
	name string
	bit  uint
}{
	{"CAP_BPF", unix.CAP_BPF},
	{"CAP_SYS_ADMIN", unix.CAP_SYS_ADMIN},
	{"CAP_NET_ADMIN", unix.CAP_NET_ADMIN},
	{"CAP_PERFMON", unix.CAP_PERFMON},
	{"CAP_SYS_RESOURCE", unix.CAP_SYS_RESOURCE},
}

// Privileges is who the caller runs as.
type Privileges struct {
	EUID int  `json:"euid"`
	Root bool `json:"root"`
	// CapEff is the calling thread's effective capability mask, in hex.
	CapEff string `json:"cap_eff"`
	// Capabilities maps each capability the layers use to whether it is
	// effective.
	Capabilities map[string]bool `json:"capabilities"`
	Error        string          `json:"error,omitempty"`
}

// ParseCapEff returns the CapEff mask from the text of /proc/<pid>/status.
func ParseCapEff(status string) (uint64, error) {
	for _, line := range strings.Split(status, "\n") {
		value, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(value), 16, 64)
		if err != nil {
			return 0, fmt.Errorf("parse CapEff %q: %w", strings.TrimSpace(value), err)
		}
		return mask, nil
	}
	return 0, fmt.Errorf("no CapEff line in status")
}

// CapabilitiesFromMask names the capabilities of interest set in mask.
func CapabilitiesFromMask(mask uint64) map[string]bool {
	caps := make(map[string]bool, len(capabilityNames))
	for _, c := range capabilityNames {
		caps[c.name] = mask&(1<<c.bit) != 0
	}
	return caps
}

// CapabilityNames lists the capabilities Privileges reports, in a fixed order.
func CapabilityNames() []string {
	names := make([]string, len(capabilityNames))
	for i, c := range capabilityNames {
		names[i] = c.name
	}
	return names
}

// ProbePrivileges reads the effective uid and capability set.
func ProbePrivileges() Privileges {
	p := Privileges{EUID: os.Geteuid()}
	p.Root = p.EUID == 0
	mask, err := EffectiveCaps()
	if err != nil {
		p.Error = err.Error()
		return p
	}
	p.CapEff = fmt.Sprintf("%016x", mask)
	p.Capabilities = CapabilitiesFromMask(mask)
	return p
}

// CapabilitySets are a thread's capability sets as 64-bit masks, bit n
// standing for capability n.
type CapabilitySets struct {
	Permitted, Effective, Inheritable uint64
}

// ThreadCapabilities reads the calling thread's capability sets with
// capget(2). Capabilities are per thread; Go keeps them equal on all threads
// only when every change goes through all of them (see confine).
func ThreadCapabilities() (CapabilitySets, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData // version 3: low and high 32 bits
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return CapabilitySets{}, fmt.Errorf("capget: %w", err)
	}
	join := func(lo, hi uint32) uint64 { return uint64(hi)<<32 | uint64(lo) }
	return CapabilitySets{
		Permitted:   join(data[0].Permitted, data[1].Permitted),
		Effective:   join(data[0].Effective, data[1].Effective),
		Inheritable: join(data[0].Inheritable, data[1].Inheritable),
	}, nil
}

// EffectiveCaps returns the calling thread's effective capability mask.
func EffectiveCaps() (uint64, error) {
	sets, err := ThreadCapabilities()
	return sets.Effective, err
}

// capLastCapPath holds the highest capability number the kernel knows.
const capLastCapPath = "/proc/sys/kernel/cap_last_cap"

// LastCap returns the highest capability number this kernel knows: loops
// over "every capability" (bounding set, ambient set) must reach it, and
// no further.
func LastCap() (int, error) {
	b, err := os.ReadFile(capLastCapPath)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", capLastCapPath, err)
	}
	n, err := parseLastCap(b)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", capLastCapPath, err)
	}
	return n, nil
}

// parseLastCap accepts 0 to 63: capability masks are 64 bits wide.
func parseLastCap(b []byte) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 || n > 63 {
		return 0, fmt.Errorf("unexpected content %q", b)
	}
	return n, nil
}
