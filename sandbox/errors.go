// Package sandbox launches and supervises one jailed MCP server: cgroup and
// limits, the init step that confines itself before exec, stdio and signal
// relay, exit status, and cleanup that survives mcpjail's own death.
package sandbox

import (
	"fmt"

	"github.com/mcpjail/mcpjail/sandbox/initstep"
)

// Exit codes, following docker run's convention; the init step exits with
// the same ones.
const (
	ExitUsage       = 2                        // bad profile or flags: nothing was started
	ExitRefused     = initstep.ExitRefused     // mcpjail failed or refused to start the server
	ExitCannotExec  = initstep.ExitCannotExec  // the command exists but cannot be executed
	ExitNotFound    = initstep.ExitNotFound    // the command was not found
	exitSignalShift = initstep.ExitSignalShift // a server killed by signal N exits 128+N
)

// Error is a failure that ends a run with a specific exit code.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func errorf(code int, format string, a ...any) *Error {
	return &Error{Code: code, Err: fmt.Errorf(format, a...)}
}
