// Package initstep is the init step of a jail: mcpjail-init, started by
// the launcher (`mcpjail run`) in the jail's namespaces, moved into the
// jail's cgroups, and then given its spec over a pipe. It confines itself
// (credentials, capabilities, no_new_privs, Landlock, seccomp) and execs
// the server; as PID 1 of a new PID namespace it first starts itself again
// as PID 2, which does that, and supervises it.
//
// It is a binary of its own, beside mcpjail, because every process of a
// run pays for its binary's package initialisation: mcpjail links the eBPF
// loader and the cgroup library with its v1 statistics' protobuf types,
// which the two init processes of every run have no use for (a test in
// cmd/mcpjail-init keeps them out).
package initstep

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/mcpjail/mcpjail/sandbox/confine"
)

// BinaryName is the init step's executable, installed beside mcpjail.
const BinaryName = "mcpjail-init"

// File descriptors the launcher hands to the init step (ExtraFiles order).
const (
	SpecFD     = 3 // the Spec as JSON, closed by the launcher after writing (PID 1 passes it to PID 2)
	LifelineFD = 4 // never written; EOF means the launcher is gone
	// NotifyFD is where the init step sends the launcher the seccomp
	// deny-list's listener (sandbox/seccompnotify), before the server runs.
	NotifyFD = 5
	// ChildFD, given to PID 1 only, is where it sends the launcher a pidfd
	// of PID 2 (a SOCK_SEQPACKET socket).
	ChildFD = 6
	// StartedFD is a pipe on which the step that execs the server writes one
	// byte right before execve: without it, the launcher knows that what
	// exited was the init step, not the server. Close-on-exec, so the server
	// never holds it.
	StartedFD = 7
)

// SuperviseArg is argv[1] of an init step that is PID 1 of a new PID
// namespace: it starts PID 2 and supervises it.
const SuperviseArg = "supervise"

// Exit codes of the init step, and so of a run, following docker run's
// convention.
const (
	ExitRefused     = 125 // mcpjail failed or refused to start the server
	ExitCannotExec  = 126 // the command exists but cannot be executed
	ExitNotFound    = 127 // the command was not found
	ExitSignalShift = 128 // a server killed by signal N exits 128+N
)

// Version is the Spec's format and the descriptors that come with it. The
// launcher and mcpjail-init are built together; a mismatch is a broken
// install, refused rather than misread.
const Version = 3

// maxSpecSize bounds what init reads from the spec pipe.
const maxSpecSize = 16 << 20

// Spec is everything the init step needs; it travels over a pipe, never
// through the environment or argv, because it holds secret values.
type Spec struct {
	Version int          `json:"version"`
	Confine confine.Spec `json:"confine"`
	// Path is the resolved executable; Argv[0] is what the user wrote.
	Path string   `json:"path"`
	Argv []string `json:"argv"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
}

// RelayedSignals are forwarded from mcpjail to init and from init to the
// server.
var RelayedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// StatusCode turns a wait status into a shell-style exit code.
func StatusCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return ExitSignalShift + int(ws.Signal())
	}
	return ws.ExitStatus()
}

func readSpec(r io.Reader) (*Spec, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSpecSize+1))
	if err != nil {
		return nil, fmt.Errorf("read init spec: %w", err)
	}
	if len(b) > maxSpecSize {
		return nil, fmt.Errorf("init spec larger than %d bytes", maxSpecSize)
	}
	var s Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode init spec: %w", err)
	}
	if s.Version != Version {
		return nil, fmt.Errorf("init spec version %d, want %d: %s is not from the same build as mcpjail", s.Version, Version, BinaryName)
	}
	if s.Path == "" || len(s.Argv) == 0 {
		return nil, fmt.Errorf("init spec has no command")
	}
	return &s, nil
}

// WriteSpec sends s to the init step and closes w.
func WriteSpec(w *os.File, s *Spec) error {
	defer w.Close()
	s.Version = Version
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode init spec: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("send init spec: %w", err)
	}
	return nil
}
