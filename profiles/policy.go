package profiles

import (
	"fmt"
	"net/netip"
	"time"
)

// Policy is a compiled profile: every variable expanded, every path absolute and
// cleaned, every size and port parsed. It is what the sandbox and the eBPF layer
// consume; nothing downstream reads YAML. Compile returns a fresh value whose
// slices and maps are not shared with anything else, and consumers treat it as
// read-only.
type Policy struct {
	// Name is the profile's name; Description is free text for humans.
	Name        string `json:"name" yaml:"name"`
	Description string `json:"description,omitempty" yaml:"description,omitempty"`
	// Source says where the profile came from: "builtin:NAME" or a file path.
	Source string `json:"source" yaml:"source"`

	Server      Server      `json:"server" yaml:"server"`
	Filesystem  Filesystem  `json:"filesystem" yaml:"filesystem"`
	Network     Network     `json:"network" yaml:"network"`
	Limits      Limits      `json:"limits" yaml:"limits"`
	Env         Env         `json:"env" yaml:"env"`
	OnViolation OnViolation `json:"on_violation" yaml:"on_violation"`
	// Require names optional layers the run must have (LayerBPFLSM); a
	// kernel without one refuses the run, --allow-degraded or not.
	Require []string `json:"require,omitempty" yaml:"require,omitempty"`
}

// Server pins what may run and as whom.
type Server struct {
	// Executable, when set, is the absolute path argv[0] must resolve to
	// (after following symlinks).
	Executable string `json:"executable,omitempty" yaml:"executable,omitempty"`
	// SHA256, when set, is the lower-case hex digest of the file that will run.
	SHA256 string `json:"sha256,omitempty" yaml:"sha256,omitempty"`
	// User is the account the server runs as when mcpjail runs as root.
	User string `json:"user,omitempty" yaml:"user,omitempty"`
}

// Filesystem holds absolute, cleaned paths. Exec implies read; write implies
// read, create, delete, rename and truncate beneath. Deny wins over any allowed
// parent, and no allowed path lies beneath a denied one (Compile rejects that).
type Filesystem struct {
	Read  []string `json:"read" yaml:"read"`
	Write []string `json:"write" yaml:"write"`
	Exec  []string `json:"exec" yaml:"exec"`
	Deny  []string `json:"deny" yaml:"deny"`
}

// Network is what the server may reach. An empty Egress list means no egress.
type Network struct {
	Egress       []EgressRule `json:"egress" yaml:"egress"`
	Unix         []string     `json:"unix" yaml:"unix"`
	Bind         []PortRange  `json:"bind" yaml:"bind"`
	EgressBudget *Budget      `json:"egress_budget,omitempty" yaml:"egress_budget,omitempty"`
}

// EgressRule allows traffic to one prefix. An empty Ports list means every port.
type EgressRule struct {
	Prefix   netip.Prefix `json:"cidr" yaml:"cidr"`
	Ports    []PortRange  `json:"ports" yaml:"ports"`
	Protocol Protocol     `json:"protocol" yaml:"protocol"`
}

// AllPorts reports whether the rule allows every port.
func (r EgressRule) AllPorts() bool { return len(r.Ports) == 0 }

// PortRange is an inclusive range; a single port has Lo == Hi.
type PortRange struct {
	Lo uint16 `json:"lo" yaml:"lo"`
	Hi uint16 `json:"hi" yaml:"hi"`
}

// Contains reports whether p lies in the range.
func (r PortRange) Contains(p uint16) bool { return p >= r.Lo && p <= r.Hi }

func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return fmt.Sprint(r.Lo)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// MarshalText renders "443" or "8000-8100", the form profiles use.
func (r PortRange) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Protocol is the transport an egress rule covers.
type Protocol string

const (
	ProtoTCP Protocol = "tcp"
	ProtoUDP Protocol = "udp"
	ProtoAny Protocol = "any"
)

// CoversTCP reports whether the rule's protocol includes TCP.
func (p Protocol) CoversTCP() bool { return p == ProtoTCP || p == ProtoAny }

// CoversUDP reports whether the rule's protocol includes UDP.
func (p Protocol) CoversUDP() bool { return p == ProtoUDP || p == ProtoAny }

// Budget limits bytes sent per time window.
type Budget struct {
	Bytes uint64        `json:"bytes" yaml:"bytes"`
	Per   time.Duration `json:"per" yaml:"per"`
}

// Limits are cgroup limits. Zero means "not limited by the profile".
type Limits struct {
	MemoryBytes int64 `json:"memory_bytes,omitempty" yaml:"memory_bytes,omitempty"`
	Pids        int64 `json:"pids,omitempty" yaml:"pids,omitempty"`
	// CPUMillis is the CPU quota in thousandths of a core (1.5 cores = 1500).
	CPUMillis int64 `json:"cpu_millis,omitempty" yaml:"cpu_millis,omitempty"`
}

// Env describes the server's whole environment; nothing else passes.
type Env struct {
	// Pass names variables copied from mcpjail's environment when present.
	Pass []string `json:"pass" yaml:"pass"`
	// Set holds literal values (variables already expanded), sorted by name.
	Set []EnvVar `json:"set" yaml:"set"`
	// Secrets maps a variable to the absolute path of the file holding its value.
	// The value is read at run time and never stored in a Policy.
	Secrets []EnvSecret `json:"secrets" yaml:"secrets"`
}

// EnvVar is one literal environment variable.
type EnvVar struct {
	Name  string `json:"name" yaml:"name"`
	Value string `json:"value" yaml:"value"`
}

// EnvSecret is one variable whose value comes from a file.
type EnvSecret struct {
	Name string `json:"name" yaml:"name"`
	Path string `json:"path" yaml:"path"`
}

// Action is what happens on a violation.
type Action string

const (
	ActionDeny Action = "deny"
	ActionKill Action = "kill"
)

// OnViolation holds the action per family of violation.
type OnViolation struct {
	File    Action `json:"file" yaml:"file"`
	Exec    Action `json:"exec" yaml:"exec"`
	Network Action `json:"network" yaml:"network"`
}

// DefaultOnViolation is used when a profile says nothing: file deny, exec kill,
// network kill.
func DefaultOnViolation() OnViolation {
	return OnViolation{File: ActionDeny, Exec: ActionKill, Network: ActionKill}
}
