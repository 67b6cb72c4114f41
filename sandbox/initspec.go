package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/mcpjail/mcpjail/sandbox/confine"
)

// initArg is argv[1] of the re-executed init step. It is not a CLI command:
// main() checks for it before any flag parsing.
const initArg = "__mcpjail_init"

// File descriptors the launcher hands to the init step (ExtraFiles order).
const (
	specFD     = 3 // the initSpec as JSON, closed by the launcher after writing
	lifelineFD = 4 // never written; EOF means the launcher is gone
	// notifyFD is where the init step sends the launcher the seccomp
	// deny-list's listener (sandbox/seccompnotify), before the server runs.
	notifyFD = 5
)

// maxSpecSize bounds what init reads from the spec pipe.
const maxSpecSize = 16 << 20

// initSpec is everything the init step needs; it travels over a pipe, never
// through the environment or argv, because it holds secret values.
type initSpec struct {
	Confine confine.Spec `json:"confine"`
	// Path is the resolved executable; Argv[0] is what the user wrote.
	Path string   `json:"path"`
	Argv []string `json:"argv"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
	// Supervise is true when init is PID 1 of a new PID namespace: it then
	// forks the server, relays signals and reaps orphans instead of exec'ing.
	Supervise bool `json:"supervise"`
}

// IsInitInvocation reports whether args are those of the re-executed init step.
func IsInitInvocation(args []string) bool {
	return len(args) == 2 && args[1] == initArg
}

func readInitSpec(r io.Reader) (*initSpec, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSpecSize+1))
	if err != nil {
		return nil, fmt.Errorf("read init spec: %w", err)
	}
	if len(b) > maxSpecSize {
		return nil, fmt.Errorf("init spec larger than %d bytes", maxSpecSize)
	}
	var s initSpec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode init spec: %w", err)
	}
	if s.Path == "" || len(s.Argv) == 0 {
		return nil, fmt.Errorf("init spec has no command")
	}
	return &s, nil
}

func writeInitSpec(w *os.File, s *initSpec) error {
	defer w.Close()
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode init spec: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("send init spec: %w", err)
	}
	return nil
}
