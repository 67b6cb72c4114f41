// Package audit defines mcpjail's event record and writes it: one concise
// human line on stderr, and JSON lines to an audit log.
package audit

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Kind is what happened.
type Kind string

const (
	KindStart        Kind = "start"
	KindExit         Kind = "exit"
	KindKill         Kind = "kill"
	KindExec         Kind = "exec"
	KindOpen         Kind = "open"
	KindConnect      Kind = "connect"
	KindSendmsg      Kind = "sendmsg"
	KindUnixConnect  Kind = "unix_connect"
	KindSocket       Kind = "socket"
	KindEgressBudget Kind = "egress_budget"
	KindDNS          Kind = "dns"
	KindLimit        Kind = "limit"
	// KindRefuse is mcpjail refusing to start a server (integrity, missing layer).
	KindRefuse Kind = "refuse"
	// KindDegraded records a layer that is missing and was accepted with --allow-degraded.
	KindDegraded Kind = "degraded"
	// KindLost reports ring-buffer records the kernel could not deliver.
	KindLost Kind = "lost"
	// KindFork is a jailed process starting another process (not a thread);
	// PID is the parent, ChildPID the new process.
	KindFork Kind = "fork"
	// KindTaskExit is any jailed process ending (its last thread), seen by
	// the kernel; KindExit is the server's end as mcpjail reports it.
	KindTaskExit Kind = "task_exit"
	// KindSyscall is a system call the seccomp deny-list refused (other
	// than socket and socketpair, which are KindSocket).
	KindSyscall Kind = "syscall"
)

// Verdict is what the jail decided.
type Verdict string

const (
	VerdictAllow Verdict = "allow"
	VerdictDeny  Verdict = "deny"
	VerdictAudit Verdict = "audit"
)

// Layer is which mechanism decided.
type Layer string

const (
	LayerLandlock Layer = "landlock"
	LayerBPF      Layer = "bpf"
	LayerCgroup   Layer = "cgroup"
	LayerSeccomp  Layer = "seccomp"
	// LayerBPFLSM is the BPF-LSM deny layer (bpf/lsm.bpf.c), where the kernel runs it.
	LayerBPFLSM Layer = "bpf-lsm"
	// LayerKernel is a refusal none of mcpjail's layers is known to have
	// made (an EPERM open or exec: Landlock refuses with EACCES), seen by
	// the watching programs.
	LayerKernel Layer = "kernel"
	// LayerMcpjail is mcpjail's own user-space checks (integrity pins, layer checks).
	LayerMcpjail Layer = "mcpjail"
)

// Action is what followed.
type Action string

const (
	ActionNone Action = "none"
	ActionKill Action = "kill"
)

// Server identifies one jailed run.
type Server struct {
	Name     string `json:"name"`
	Instance string `json:"instance"`
}

// Event is one audit record. The JSON field names are a public contract.
type Event struct {
	Time    time.Time `json:"time"`
	Server  Server    `json:"server"`
	PID     int       `json:"pid,omitempty"`
	Comm    string    `json:"comm,omitempty"`
	Kind    Kind      `json:"kind"`
	Target  string    `json:"target,omitempty"`
	Verdict Verdict   `json:"verdict"`
	Layer   Layer     `json:"layer"`
	Action  Action    `json:"action"`
	Reason  string    `json:"reason,omitempty"`
	// Count is how many identical events this record stands for (rate limiting); 0 means 1.
	Count int `json:"count,omitempty"`
	// ExitCode is set on exit and task_exit events: the status as a shell
	// reports it (the code, or 128+N after signal N).
	ExitCode *int `json:"exit_code,omitempty"`
	// ChildPID is the new process of a fork event (as the host sees it).
	ChildPID int `json:"child_pid,omitempty"`
}

// MarshalJSON writes time as RFC 3339 with nanoseconds, in UTC.
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event
	return json.Marshal(struct {
		Time string `json:"time"`
		plain
	}{Time: e.Time.UTC().Format(time.RFC3339Nano), plain: plain(e)})
}

// Line renders the event as one concise human line (without the "mcpjail:" prefix).
func (e Event) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", e.Server.Name, e.Kind)
	if e.Target != "" {
		fmt.Fprintf(&b, " %s", e.Target)
	}
	if e.Verdict != VerdictAllow {
		fmt.Fprintf(&b, " %s by %s", e.Verdict, e.Layer)
	}
	if e.Action == ActionKill {
		b.WriteString(", killed")
	}
	if e.PID != 0 {
		fmt.Fprintf(&b, " (pid %d", e.PID)
		if e.Comm != "" {
			fmt.Fprintf(&b, " %s", e.Comm)
		}
		if e.ChildPID != 0 {
			fmt.Fprintf(&b, ", child %d", e.ChildPID)
		}
		b.WriteString(")")
	}
	if e.Count > 1 {
		fmt.Fprintf(&b, " x%d", e.Count)
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, ": %s", e.Reason)
	}
	return b.String()
}
