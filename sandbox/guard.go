package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

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

// guardPipeFD is the guard's instructions from the launcher (ExtraFiles[0]).
const guardPipeFD = 3

// guardHoldFD is the first of the descriptors the guard holds for the
// launcher (startGuard); they follow the pipe at guardPipeFD.
const guardHoldFD = guardPipeFD + 1

// maxGuardHold bounds how many held descriptors a message may announce.
const maxGuardHold = 256

// guardLinger is how long the guard keeps the held descriptors after the
// launcher is done. A run started meanwhile finds the syscall tracepoints
// still registered: its attach is quick, and so is the later release of
// these (it is no longer the last). Without it, a run started while a guard
// releases waits for that release (~0.5 s), because the kernel does both
// under one mutex. The programs held meanwhile find no jail and return.
const guardLinger = 2 * time.Second

// guardMsg is one line on the guard's pipe. Resources are announced as they
// are created; Done says the launcher cleaned up itself. Hold, the first
// message when nonzero, says how many descriptors from guardHoldFD on the
// guard holds.
type guardMsg struct {
	Hold   int          `json:"hold,omitempty"`
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

// startGuard starts the cleanup guard. It also inherits hold, descriptors
// whose last close is slow (bpf.Loader.DetachFiles): once the launcher is
// done, the guard points its stdio at /dev/null, lingers (guardLinger) and
// closes them, so that neither the MCP client waiting for mcpjail's exit
// nor one reading its stderr to the end waits for that.
func startGuard(hold []*os.File) (*guard, error) {
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
	cmd.ExtraFiles = append([]*os.File{r}, hold...)
	// Its own session: a signal to the client's process group does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("start cleanup guard: %w", err)
	}
	g := &guard{cmd: cmd, w: w, enc: json.NewEncoder(w)}
	if len(hold) > 0 {
		if err := g.announce(guardMsg{Hold: len(hold)}); err != nil {
			g.finish()
			return nil, err
		}
	}
	return g, nil
}

func (g *guard) announce(m guardMsg) error {
	if err := g.enc.Encode(m); err != nil {
		return fmt.Errorf("tell cleanup guard: %w", err)
	}
	return nil
}

// finish tells the guard that cleanup is done. It does not wait for the
// guard's exit, which may close slow descriptors (startGuard); the guard is
// reaped in the background, or by init once mcpjail has exited.
func (g *guard) finish() {
	_ = g.announce(guardMsg{Done: true})
	g.w.Close()
	go g.cmd.Wait()
}

// GuardMain runs the cleanup guard. It never returns.
func GuardMain() {
	// Terminal and client signals are not for the guard; SIGKILL still is.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGPIPE)
	var (
		tmpDirs []string
		groups  []*cgroup.Spec
		held    int
	)
	sc := bufio.NewScanner(os.NewFile(guardPipeFD, "guard-pipe"))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m guardMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue // a torn line from a dying launcher; keep what we know
		}
		if m.Hold > 0 && m.Hold <= maxGuardHold {
			held = m.Hold
		}
		if m.Done {
			releaseHeld(held, guardLinger)
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
	releaseHeld(held, 0)
	os.Exit(code)
}

// releaseHeld closes the n descriptors held for the launcher after linger,
// all together: their releases then share grace periods where the kernel
// allows it. Stdio goes first, so that nobody reading mcpjail's output
// waits for this.
func releaseHeld(n int, linger time.Duration) {
	if n == 0 {
		return
	}
	if null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0); err == nil {
		for fd := 0; fd <= 2; fd++ {
			_ = unix.Dup2(int(null.Fd()), fd)
		}
		null.Close()
	}
	time.Sleep(linger)
	var wg sync.WaitGroup
	for fd := guardHoldFD; fd < guardHoldFD+n; fd++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = unix.Close(fd)
		}()
	}
	wg.Wait()
}
