// Package sandbox launches and supervises one jailed MCP server: cgroup and
// limits, the init step that confines itself before exec, stdio and signal
// relay, exit status, and cleanup that survives mcpjail's own death.
package sandbox

import "fmt"

// Exit codes, following docker run's convention.
const (
	ExitUsage       = 2   // bad profile or flags: nothing was started
	ExitRefused     = 125 // mcpjail failed or refused to start the server
	ExitCannotExec  = 126 // the command exists but cannot be executed
	ExitNotFound    = 127 // the command was not found
	exitSignalShift = 128 // a server killed by signal N exits 128+N
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
