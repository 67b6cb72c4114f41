package initstep

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/confine"
	"github.com/mcpjail/mcpjail/sandbox/seccompnotify"
)

// Main is mcpjail-init: already inside the jail's cgroups, it confines
// itself and then runs the server. It never returns.
func Main() {
	code, err := initMain()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mcpjail: %v\n", err)
	}
	os.Exit(code)
}

// closeRangeCloexec is CLOSE_RANGE_CLOEXEC of <linux/close_range.h> (5.11),
// which x/sys/unix does not export.
const closeRangeCloexec = 1 << 2

func initMain() (int, error) {
	// Only stdin, stdout and stderr reach the server. A descriptor the MCP
	// client (or a shell) leaked to mcpjail without close-on-exec would give
	// the server a file or socket that no rule of the jail governs: Landlock
	// checks paths at open, not descriptors opened outside. Every kernel
	// with Landlock has close_range's CLOEXEC flag; without it, refuse.
	if err := unix.CloseRange(3, math.MaxUint32, closeRangeCloexec); err != nil {
		return ExitRefused, fmt.Errorf("init: mark inherited descriptors close-on-exec: %w", err)
	}
	if len(os.Args) == 2 && os.Args[1] == SuperviseArg {
		return supervise()
	}
	spec, err := readOwnSpec()
	if err != nil {
		return ExitRefused, err
	}
	return confineAndExec(spec)
}

// readOwnSpec reads the spec the launcher writes once this process is
// inside the jail's cgroups.
func readOwnSpec() (*Spec, error) {
	// The launcher's pipe, or someone ran this by hand: say so rather than
	// fail to decode whatever descriptor 3 happens to be.
	var st unix.Stat_t
	if err := unix.Fstat(SpecFD, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return nil, fmt.Errorf("init: no spec pipe on descriptor %d: %s is started by `mcpjail run`, not by hand", SpecFD, BinaryName)
	}
	f := os.NewFile(SpecFD, "init-spec")
	defer f.Close()
	spec, err := readSpec(f)
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	return spec, nil
}

// confineAndExec confines the calling process and replaces it with the
// server, so that the server keeps this pid: Landlock resolves a profile's
// /proc/self when the rules are made, and it must name the server.
func confineAndExec(spec *Spec) (int, error) {
	plan, err := confine.NewPlan(spec.Confine)
	if err != nil {
		return ExitRefused, fmt.Errorf("init: plan confinement: %w", err)
	}
	listener, missing, err := plan.ApplyReporting()
	if err != nil {
		return ExitRefused, fmt.Errorf("init: confine: %w", err)
	}
	if err := handOverListener(listener, missing); err != nil {
		return ExitRefused, fmt.Errorf("init: %w", err)
	}
	// Changing credentials cleared the parent-death signal; arm it again and
	// then make sure the launcher did not die in between.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
		return ExitRefused, fmt.Errorf("init: set parent-death signal: %w", err)
	}
	if launcherGone() {
		return ExitRefused, errors.New("init: launcher exited before the server started")
	}
	if err := os.Chdir(spec.Dir); err != nil {
		return ExitRefused, fmt.Errorf("init: chdir %s: %w", spec.Dir, err)
	}
	// The last word before execve: from here on, what exits is the server
	// (or the execve's own failure, 126 or 127 like a shell's).
	if _, err := unix.Write(StartedFD, []byte{1}); err != nil {
		return ExitRefused, fmt.Errorf("init: tell the launcher the server starts: %w", err)
	}
	err = syscall.Exec(spec.Path, spec.Argv, spec.Env)
	return execFailureCode(err), fmt.Errorf("exec %s: %w", spec.Path, err)
}

// handOverListener sends the seccomp listener (or why there is none) to the
// launcher and closes every copy here: whoever holds it answers the
// deny-list's calls, so it must never reach the server. Without it the
// deny-list's calls would fail with ENOSYS, unreported: a failed hand-over
// refuses the run.
func handOverListener(listener *os.File, missing string) error {
	defer unix.Close(NotifyFD)
	if listener == nil && missing == "" {
		return nil // no listener planned: the launcher's plan reported it
	}
	if listener != nil {
		defer listener.Close()
	}
	return seccompnotify.SendListener(NotifyFD, listener, missing)
}

// launcherGone polls the lifeline pipe: the launcher never writes to it, so
// readability or hang-up means its write end closed, i.e. the launcher died.
func launcherGone() bool {
	fds := []unix.PollFd{{Fd: LifelineFD, Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err != nil || (n > 0 && fds[0].Revents != 0)
}

func execFailureCode(err error) int {
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
		return ExitNotFound
	}
	return ExitCannotExec
}

// supervise runs as PID 1 of the jail's PID namespace. PID 1 ignores signals
// it has no handler for, so the server must not be PID 1: init starts the
// init step again as PID 2 (which confines itself and execs the server),
// relays signals, reaps re-parented orphans, and exits with the server's
// status, at which point the kernel kills whatever is left in the namespace.
//
// PID 2 starts at once, so that the two Go start-ups overlap the
// launcher's work (and the daemon's); PID 1 hands its pidfd to the
// launcher, which puts both into the jail's cgroups and only then writes
// the spec, which PID 2 reads from the launcher's pipe (PID 1 needs none).
// Until then both only run this code. If PID 1 exits, the kernel kills
// PID 2 with the namespace.
func supervise() (int, error) {
	// It remounts /proc: only ever in the namespaces mcpjail made for it,
	// never where someone ran mcpjail-init by hand.
	if os.Getpid() != 1 {
		return ExitRefused, fmt.Errorf("init: %s %s runs only as PID 1 of the PID namespace mcpjail creates", BinaryName, SuperviseArg)
	}
	if err := mountPrivateProc(); err != nil {
		return ExitRefused, fmt.Errorf("init: %w", err)
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, RelayedSignals...)
	pidfd := -1
	pid, err := syscall.ForkExec("/proc/self/exe", []string{BinaryName}, &syscall.ProcAttr{
		Env: []string{},
		// ChildFD is PID 1's own (^uintptr(0): closed in PID 2).
		Files: []uintptr{0, 1, 2, SpecFD, LifelineFD, NotifyFD, ^uintptr(0), StartedFD},
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, PidFD: &pidfd},
	})
	// The spec, the seccomp listener and the word that the server starts
	// are PID 2's business.
	unix.Close(SpecFD)
	unix.Close(NotifyFD)
	unix.Close(StartedFD)
	if err != nil {
		return ExitRefused, fmt.Errorf("init: start the server's init step: %w", err)
	}
	err = sendChild(ChildFD, pidfd)
	unix.Close(pidfd)
	unix.Close(ChildFD)
	if err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		return ExitRefused, fmt.Errorf("init: %w", err)
	}
	// PID 1 only waits and relays from here on: it keeps CAP_KILL (the
	// server may run as another user) and gives up every other capability.
	if err := confine.KeepOnly(1 << unix.CAP_KILL); err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		return ExitRefused, fmt.Errorf("init: drop capabilities: %w", err)
	}
	go func() {
		for s := range sigs {
			_ = syscall.Kill(pid, s.(syscall.Signal))
		}
	}()
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return ExitRefused, fmt.Errorf("init: wait: %w", err)
		}
		if got == pid {
			return StatusCode(ws), nil
		}
	}
}

// mountPrivateProc gives the new PID namespace its own /proc inside a private
// mount namespace. With the host's /proc, "/proc/<getpid()>" would name the
// host's PID 1 (code that walks its own tasks that way then spins forever),
// and the server could list every process on the host.
func mountPrivateProc() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc for the PID namespace: %w", err)
	}
	return nil
}
