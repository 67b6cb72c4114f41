// Package audit defines mcpjail's event record and writes it: one concise
// human line on stderr, and JSON lines to an audit log.
package audit

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
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
	// KindAccept is a jailed listener answering a TCP connection on a port
	// not in network.bind; the target is the listener's address.
	KindAccept Kind = "accept"
	KindDNS    Kind = "dns"
	KindLimit  Kind = "limit"
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

// Line renders the event as one concise human line (without the "mcpjail:"
// prefix). What a server chooses (paths, argv, its comm) is shown with its
// control characters escaped: a file name holding a newline would forge a
// line, and one holding escape sequences would reach the operator's terminal.
func (e Event) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", printable(e.Server.Name), e.Kind)
	if e.Target != "" {
		fmt.Fprintf(&b, " %s", printable(e.Target))
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
			fmt.Fprintf(&b, " %s", printable(e.Comm))
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
		fmt.Fprintf(&b, ": %s", printable(e.Reason))
	}
	return b.String()
}

// printable returns s with every rune that is not printable (control
// characters, bidirectional overrides, invalid UTF-8) escaped Go-style.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || (!unicode.IsPrint(r) && r != ' ') {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsPrint(r) || r == ' ':
			b.WriteString(s[i : i+size])
		default:
			q := strconv.QuoteRuneToASCII(r) // '\n', '\x1b', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}
