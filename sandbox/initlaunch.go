package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/cgroup"
	"github.com/mcpjail/mcpjail/sandbox/initstep"
)

// initProcess is the init process from its start to its exit. Started, it
// waits for its spec, which it gets only once it is inside the jail.
type initProcess struct {
	cmd       *exec.Cmd
	specW     *os.File       // the spec pipe's write end
	lifeW     *os.File       // the lifeline: init sees EOF when this process dies
	seccomp   *os.File       // where init sends the seccomp listener
	child     *os.File       // where PID 1 sends PID 2's pidfd (supervise only)
	started   *os.File       // read end of initstep.StartedFD: a byte once the server is exec'd
	pidfd     int            // -1 unless a daemon must identify the child
	supervise bool           // init is PID 1 of a new PID namespace
	sigs      chan os.Signal // relayed signals, from the supervision on
	// ended is closed once the process was waited for: only then may the
	// thread that started it exit, since the parent-death signal fires when
	// the creating thread exits, not the process.
	ended chan struct{}
}

// userNSError is a failed start of the init step in a new user namespace.
type userNSError struct{ err error }

func (e *userNSError) Error() string { return "start init step in a user namespace: " + e.err.Error() }

// startInit starts the init step on an OS thread that is locked until the
// step ends. Its errors are not yet events: a run through the daemon starts
// init before its event log exists (prepare).
func (p *prepared) startInit(root bool, grp *cgroup.Group) (*initProcess, error) {
	type result struct {
		s   *initProcess
		err error
	}
	started := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		s, err := p.spawnInit(root, grp)
		started <- result{s, err}
		if err == nil {
			<-s.ended
		}
	}()
	r := <-started
	return r.s, r.err
}

func (p *prepared) spawnInit(root bool, grp *cgroup.Group) (_ *initProcess, err error) {
	initPath, err := initBinary()
	if err != nil {
		return nil, err
	}
	s := &initProcess{pidfd: -1, supervise: root || (p.opts.Remote != nil && !p.sharedPIDNS), ended: make(chan struct{})}
	// theirs are the child's ends: not ours to keep, whatever happens.
	var theirs []*os.File
	defer func() {
		for _, f := range theirs {
			f.Close()
		}
		if err != nil {
			s.closeFiles()
		}
	}()
	specR, specW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("spec pipe: %w", err)
	}
	theirs, s.specW = append(theirs, specR), specW
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("lifeline pipe: %w", err)
	}
	theirs, s.lifeW = append(theirs, lifeR), lifeW
	seccompConn, seccompInit, err := seccompChannel()
	if err != nil {
		return nil, err
	}
	theirs, s.seccomp = append(theirs, seccompInit), seccompConn
	startedR, startedW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("started pipe: %w", err)
	}
	theirs, s.started = append(theirs, startedW), startedR
	cmd := exec.Command(initPath)
	cmd.Args[0] = initstep.BinaryName
	// initstep.SpecFD, LifelineFD, NotifyFD, ChildFD (PID 1's; nil: closed),
	// StartedFD.
	cmd.ExtraFiles = []*os.File{specR, lifeR, seccompInit, nil, startedW}
	if s.supervise {
		childConn, childInit, err := childChannel()
		if err != nil {
			return nil, err
		}
		theirs, s.child = append(theirs, childInit), childConn
		cmd.ExtraFiles[initstep.ChildFD-initstep.SpecFD] = childInit
		cmd.Args = append(cmd.Args, initstep.SuperviseArg)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = []string{} // nothing of mcpjail's environment reaches init
	s.cmd = cmd
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	switch {
	case root:
		// A new mount namespace too, so init can mount the PID namespace's own /proc.
		attr.Cloneflags = syscall.CLONE_NEWPID | syscall.CLONE_NEWNS
	case s.supervise:
		// Unprivileged through the daemon: the PID namespace lives in a user
		// namespace that maps only the caller's own uid and gid, so nothing
		// in it is more than the user; init drops that namespace's
		// capabilities and seccomp refuses the server further namespaces.
		attr.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID | syscall.CLONE_NEWNS
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getuid(), HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getgid(), HostID: os.Getgid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
		// Init runs as the user, whose exec would clear the namespace's
		// capabilities: keep the three it needs as ambient ones (mount its
		// /proc, shrink the bounding set, signal the server); it drops them
		// itself before the server runs.
		attr.AmbientCaps = []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_SETPCAP, unix.CAP_KILL}
	}
	if grp != nil && grp.V2Path() != "" {
		// CLONE_INTO_CGROUP: the child is born in the jail's v2 cgroup.
		fd, err := grp.OpenV2()
		if err != nil {
			return nil, err
		}
		defer fd.Close()
		attr.UseCgroupFD, attr.CgroupFD = true, int(fd.Fd())
	}
	if p.opts.Remote != nil {
		attr.PidFD = &s.pidfd // the daemon identifies the child by pidfd, never by pid
	}
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		if attr.Cloneflags&syscall.CLONE_NEWUSER != 0 {
			// Unprivileged user namespaces can be off (a sysctl, an LSM):
			// runInit decides whether to go on without the PID namespace.
			return nil, &userNSError{err}
		}
		return nil, fmt.Errorf("start init step: %w", err)
	}
	if err := guardListener(root); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	return s, nil
}

// abort kills an init step that never got its spec and reaps it.
func (s *initProcess) abort() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.end()
}

// end releases what the launcher held for the step; it runs once, after
// the process was waited for.
func (s *initProcess) end() {
	if s.sigs != nil {
		signal.Stop(s.sigs)
	}
	s.closeFiles()
	close(s.ended)
}

// closeFiles closes the launcher's ends of the init step's descriptors.
func (s *initProcess) closeFiles() {
	for _, f := range []**os.File{&s.specW, &s.lifeW, &s.seccomp, &s.child, &s.started} {
		if *f != nil {
			(*f).Close()
			*f = nil
		}
	}
	if s.pidfd >= 0 {
		syscall.Close(s.pidfd)
		s.pidfd = -1
	}
}

// runInit runs the init step, started early by prepare or now, and waits
// for it.
func (p *prepared) runInit(ctx context.Context, grp *cgroup.Group, root bool) (int, error) {
	s, err := p.early, p.earlyErr
	p.early, p.earlyErr = nil, nil
	if s == nil && err == nil {
		s, err = p.startInit(root, grp)
	}
	var nsErr *userNSError
	if errors.As(err, &nsErr) {
		if !p.opts.AllowDegraded {
			return 0, p.refuse(fmt.Errorf("pid namespace: cannot create a user namespace for it: %w (use --allow-degraded to run without it)", nsErr.err))
		}
		p.events.Emit(audit.Event{Kind: audit.KindDegraded, Verdict: audit.VerdictAudit, Layer: audit.LayerMcpjail,
			Reason: fmt.Sprintf("running without a PID namespace: cannot create a user namespace for it (%v); Landlock scopes signals where the kernel has ABI 6", nsErr.err)})
		p.sharedPIDNS = true
		s, err = p.startInit(root, grp)
	}
	if err != nil {
		return 0, p.refuse(err)
	}
	return p.superviseInit(ctx, s, grp)
}

// abortEarlyInit ends an init step started by prepare that will never run:
// the run was refused before its launch.
func (p *prepared) abortEarlyInit() {
	if p.early != nil {
		p.early.abort()
		p.early = nil
	}
}

// superviseInit puts the started init step into the jail, sends its spec,
// relays signals and returns the server's exit code.
func (p *prepared) superviseInit(ctx context.Context, s *initProcess, grp *cgroup.Group) (int, error) {
	fail := func(err error) (int, error) {
		s.abort()
		return 0, p.refuse(err)
	}
	// died is fail for an init step that stopped answering: most likely it
	// ended, and how it ended is the reason to report.
	died := func(err error) (int, error) {
		s.abort()
		if s.cmd.ProcessState == nil {
			return 0, p.refuse(err)
		}
		code, werr := exitCode(s.cmd, nil)
		if werr != nil {
			return 0, p.refuse(err)
		}
		return 0, p.refuse(fmt.Errorf("%w; %w", p.initFailure(code, grp), err))
	}
	// Until here a signal ends mcpjail, and with it init (its parent-death
	// signal); from here it is relayed to the server.
	s.sigs = make(chan os.Signal, 8)
	signal.Notify(s.sigs, initstep.RelayedSignals...)
	pid := s.cmd.Process.Pid
	// PID 1 of a new PID namespace has started PID 2 already: both go in.
	var child *os.File
	if s.supervise {
		var err error
		child, err = initstep.ReceiveChild(s.child)
		s.child.Close()
		s.child = nil
		if err != nil {
			return died(err)
		}
		defer child.Close()
	}
	if p.opts.Remote != nil {
		pidfds := []int{s.pidfd}
		if child != nil {
			pidfds = append(pidfds, int(child.Fd()))
		}
		err := p.opts.Remote.Attach(pidfds...)
		syscall.Close(s.pidfd)
		s.pidfd = -1
		if err != nil {
			return fail(err)
		}
	}
	if grp != nil {
		if err := grp.Add(pid); err != nil {
			return fail(fmt.Errorf("place init step in cgroup: %w", err))
		}
		if child != nil {
			childPID, err := PidfdPID(child)
			if err == nil {
				err = grp.Add(childPID)
			}
			if err != nil {
				return fail(fmt.Errorf("place init step's PID 2 in cgroup: %w", err))
			}
		}
	}
	// Stopped once init is gone: answers what is pending, before the exit event.
	conn := s.seccomp
	s.seccomp = nil
	defer p.watchSeccomp(conn)()
	// Only now, inside every hierarchy, does init learn what to run.
	spec := &initstep.Spec{Confine: p.confineSpec(), Path: p.exe, Argv: p.opts.Argv, Env: p.env, Dir: p.opts.Workdir}
	err := initstep.WriteSpec(s.specW, spec)
	s.specW = nil
	if err != nil {
		return died(err)
	}
	p.events.Emit(audit.Event{Kind: audit.KindStart, PID: pid, Target: p.exe, Verdict: audit.VerdictAllow, Layer: audit.LayerMcpjail,
		Reason: fmt.Sprintf("profile %s as %s", p.policy.Source, p.id.desc)})
	waitErr := make(chan error, 1)
	go func() { waitErr <- s.cmd.Wait() }()
	relayed := false // a signal of mcpjail's own may end init before the server starts
	for {
		select {
		case sig := <-s.sigs:
			_ = s.cmd.Process.Signal(sig)
			relayed = true
		case <-ctx.Done():
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			ctx = context.Background() // signal once; then wait for the exit
			relayed = true
		case err := <-waitErr:
			started := s.serverStarted()
			s.end()
			code, err := exitCode(s.cmd, err)
			if err != nil || started || relayed {
				return code, err
			}
			return 0, p.refuse(p.initFailure(code, grp))
		}
	}
}

// childChannel is the socket pair over which PID 1 sends PID 2's pidfd.
func childChannel() (ours, theirs *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("init step socket: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "init-child"), os.NewFile(uintptr(fds[1]), "init-child-pid1"), nil
}

// serverStarted reads the init step's word that it execs the server
// (initstep.StartedFD). Once init has been waited for, no writer is left:
// the pipe holds the byte, or it is at EOF because init ended before.
func (s *initProcess) serverStarted() bool {
	rc, err := s.started.SyscallConn()
	if err != nil {
		return true // cannot tell: the status stays the server's
	}
	var n int
	var rerr error
	_ = rc.Read(func(fd uintptr) bool {
		n, rerr = unix.Read(int(fd), make([]byte, 1))
		return true // never wait: a writer left open (never seen) would mean "cannot tell"
	})
	return n > 0 || errors.Is(rerr, unix.EAGAIN)
}

// initFailure explains an init step that ended before it started the
// server: its own message is above it on stderr. A profile can cause that
// with a limit too small for the init step itself, whose threads and memory
// count against the jail's limits: say so when the jail hit one.
func (p *prepared) initFailure(code int, grp *cgroup.Group) error {
	why := fmt.Sprintf("the init step ended before it started the server (%s)", describeStatus(code))
	lim := p.policy.Limits
	var hit []string
	pidsKnown := false
	if grp != nil && lim.Pids > 0 {
		if n, err := grp.PidsLimitHits(); err == nil {
			pidsKnown = true
			if n > 0 {
				hit = append(hit, fmt.Sprintf("limits.pids (%d)", lim.Pids))
			}
		}
	}
	if grp != nil && lim.MemoryBytes > 0 {
		if n, err := grp.OOMKills(); err == nil && n > 0 {
			hit = append(hit, fmt.Sprintf("limits.memory (%d bytes)", lim.MemoryBytes))
		}
	}
	switch {
	case len(hit) > 0:
		why += ": the jail reached " + strings.Join(hit, " and ") + " as it started; the init step's own threads and memory count against the limits, raise them"
	case lim.Pids > 0 && !pidsKnown:
		// Through the daemon the jail's cgroup is the daemon's to read.
		why += fmt.Sprintf("; if limits.pids (%d) is small, raise it: the init step's own threads count against it", lim.Pids)
	}
	return errors.New(why)
}
