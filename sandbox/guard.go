package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/mcpjail/mcpjail/sandbox/cgroup"
	"github.com/mcpjail/mcpjail/sandbox/sockdiag"
)

// guardArg is argv[1] of the cleanup guard, a re-executed mcpjail that lives
// outside the jail in its own session. If mcpjail dies without cleaning up
// (the MCP client SIGKILLed it), the guard sees its pipe close and removes
// the jail: every process killed, every cgroup and the private TMPDIR removed.
const guardArg = "__mcpjail_guard"

// guardCleanupTimeout bounds how long the guard waits for a jail to empty.
const guardCleanupTimeout = 30 * time.Second

// guardMsg is one line on the guard's pipe. Resources are announced as they
// are created; Done says the launcher cleaned up itself.
type guardMsg struct {
	TmpDir string       `json:"tmpdir,omitempty"`
	Cgroup *cgroup.Spec `json:"cgroup,omitempty"`
	Done   bool         `json:"done,omitempty"`
}

// IsGuardInvocation reports whether args are those of the cleanup guard.
func IsGuardInvocation(args []string) bool {
	return len(args) == 2 && args[1] == guardArg
}

// guard is the launcher's handle on its cleanup guard.
type guard struct {
	cmd *exec.Cmd
	w   *os.File
	enc *json.Encoder
}

func startGuard() (*guard, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("guard pipe: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(self, guardArg)
	cmd.ExtraFiles = []*os.File{r}
	// Its own session: a signal to the client's process group does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("start cleanup guard: %w", err)
	}
	return &guard{cmd: cmd, w: w, enc: json.NewEncoder(w)}, nil
}

func (g *guard) announce(m guardMsg) error {
	if err := g.enc.Encode(m); err != nil {
		return fmt.Errorf("tell cleanup guard: %w", err)
	}
	return nil
}

// finish tells the guard that cleanup is done and waits for it to exit.
func (g *guard) finish() {
	_ = g.announce(guardMsg{Done: true})
	g.w.Close()
	_ = g.cmd.Wait()
}

// GuardMain runs the cleanup guard. It never returns.
func GuardMain() {
	// Terminal and client signals are not for the guard; SIGKILL still is.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGPIPE)
	var (
		tmpDirs []string
		groups  []*cgroup.Spec
	)
	sc := bufio.NewScanner(os.NewFile(specFD, "guard-pipe"))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m guardMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue // a torn line from a dying launcher; keep what we know
		}
		if m.Done {
			os.Exit(0)
		}
		if m.TmpDir != "" {
			tmpDirs = append(tmpDirs, m.TmpDir)
		}
		if m.Cgroup != nil {
			groups = append(groups, m.Cgroup)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), guardCleanupTimeout)
	defer cancel()
	code := 0
	for _, s := range groups {
		grp := cgroup.FromSpec(*s)
		if err := grp.Remove(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "mcpjail: cleanup guard: %v\n", err)
			code = 1
		}
		// mcpjail's death detached the jail's eBPF programs already; at least
		// stop its orphaned sockets from sending what is left in their queues.
		if id := grp.ID(); id != 0 {
			if _, err := sockdiag.DestroyCgroupSockets(id); err != nil {
				fmt.Fprintf(os.Stderr, "mcpjail: cleanup guard: %v\n", err)
				code = 1
			}
		}
	}
	for _, d := range tmpDirs {
		if err := os.RemoveAll(d); err != nil {
			fmt.Fprintf(os.Stderr, "mcpjail: cleanup guard: remove %s: %v\n", d, err)
			code = 1
		}
	}
	os.Exit(code)
}
