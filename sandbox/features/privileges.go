package features

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
	// CapEff is the effective capability mask from /proc/self/status, in hex.
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
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		p.Error = fmt.Sprintf("read /proc/self/status: %v", err)
		return p
	}
	mask, err := ParseCapEff(string(status))
	if err != nil {
		p.Error = err.Error()
		return p
	}
	p.CapEff = fmt.Sprintf("%016x", mask)
	p.Capabilities = CapabilitiesFromMask(mask)
	return p
}
