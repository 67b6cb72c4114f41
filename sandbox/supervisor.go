package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/cgroup"
)

// cleanupTimeout bounds the wait for a killed jail to empty.
const cleanupTimeout = 20 * time.Second

// eventSyncTimeout bounds the wait for the jail's last kernel events.
const eventSyncTimeout = 2 * time.Second

// launch creates the jail, starts the init step inside it, relays signals
// until the server exits, and removes the jail. Everything it creates is
// announced to the cleanup guard first, so mcpjail's own death leaks nothing.
// A run through the daemon has no guard: the daemon builds the jail and
// removes it, with the run's TMPDIR, when this process goes.
func (p *prepared) launch(ctx context.Context) (_ int, err error) {
	root := os.Geteuid() == 0
	var g *guard
	if p.opts.Remote == nil {
		if g, err = p.startGuard(); err != nil {
			return 0, p.refuse(err)
		}
		defer g.finish()
	}
	// Before finish: the guard's copies must be the last (DetachFiles).
	defer p.closeNetwork()
	defer os.RemoveAll(p.tmpDir)
	var jail *Jail
	if root && p.opts.Remote == nil { // through the daemon, the daemon builds it
		jail, err = NewJail(JailSpec{
			Name: p.events.Server().Name, Instance: p.instance, Policy: p.policy, Events: p.events,
			Network: p.network, OwnLoader: true, AllowDegraded: p.opts.AllowDegraded, Logger: p.opts.Logger,
			Created: func(s cgroup.Spec) error { return g.announce(guardMsg{Cgroup: &s}) },
		})
		if err != nil {
			return 0, p.refuse(err)
		}
		// One teardown for every path; Close is idempotent.
		defer jail.Close()
	}
	var grp *cgroup.Group
	if jail != nil {
		grp = jail.Group()
	}
	var waitRemote func()
	if p.opts.Remote != nil {
		waitRemote = p.forwardRemoteEvents()
		defer p.opts.Remote.Close()
	}
	code, err := p.runInit(ctx, grp, root)
	if err != nil {
		return 0, err
	}
	if jail != nil {
		jail.Close()
	}
	if waitRemote != nil {
		if err := p.opts.Remote.Release(); err != nil {
			p.opts.Logger.Warn("release the jail at the daemon (it removes the jail when its client goes)", "err", err)
		}
		p.opts.Remote.Close()
		waitRemote()
	}
	exit := code
	p.events.Emit(audit.Event{Kind: audit.KindExit, Verdict: audit.VerdictAllow, Layer: audit.LayerMcpjail, ExitCode: &exit, Reason: describeExit(code)})
	return code, nil
}

// startGuard starts the cleanup guard and tells it of the TMPDIR; it holds
// the eBPF links whose detach is slow.
func (p *prepared) startGuard() (*guard, error) {
	var hold []*os.File
	if p.network != nil {
		var err error
		if hold, err = p.network.DetachFiles(); err != nil {
			return nil, err
		}
	}
	g, err := startGuard(hold)
	for _, f := range hold {
		f.Close() // the guard has its own copies
	}
	if err != nil {
		return nil, err
	}
	if err := g.announce(guardMsg{TmpDir: p.tmpDir}); err != nil {
		g.finish()
		return nil, err
	}
	return g, nil
}

// runInit starts the init step and waits for it. The child is started and
// waited for on one locked OS thread: the parent-death signal fires when the
// creating thread exits, not the process, and Go may retire idle threads.
func (p *prepared) runInit(ctx context.Context, grp *cgroup.Group, root bool) (int, error) {
	type result struct {
		code int
		err  error
	}
	start := func() result {
		done := make(chan result, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
			code, err := p.startAndWait(ctx, grp, root)
			done <- result{code, err}
		}()
		return <-done
	}
	r := start()
	var nsErr *userNSError
	if errors.As(r.err, &nsErr) {
		if !p.opts.AllowDegraded {
			return 0, p.refuse(fmt.Errorf("pid namespace: cannot create a user namespace for it: %w (use --allow-degraded to run without it)", nsErr.err))
		}
		p.events.Emit(audit.Event{Kind: audit.KindDegraded, Verdict: audit.VerdictAudit, Layer: audit.LayerMcpjail,
			Reason: fmt.Sprintf("running without a PID namespace: cannot create a user namespace for it (%v); Landlock scopes signals where the kernel has ABI 6", nsErr.err)})
		p.sharedPIDNS = true
		r = start()
	}
	return r.code, r.err
}

// userNSError is a failed start of the init step in a new user namespace.
type userNSError struct{ err error }

func (e *userNSError) Error() string { return "start init step in a user namespace: " + e.err.Error() }

func (p *prepared) startAndWait(ctx context.Context, grp *cgroup.Group, root bool) (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, p.refuse(fmt.Errorf("find own executable: %w", err))
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		return 0, p.refuse(fmt.Errorf("spec pipe: %w", err))
	}
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		specR.Close()
		specW.Close()
		return 0, p.refuse(fmt.Errorf("lifeline pipe: %w", err))
	}
	defer lifeW.Close()
	seccompConn, seccompInit, err := seccompChannel()
	if err != nil {
		specR.Close()
		specW.Close()
		lifeR.Close()
		return 0, p.refuse(err)
	}
	cmd := exec.Command(self, initArg)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{specR, lifeR, seccompInit} // fds 3, 4 and 5
	cmd.Env = []string{}                                   // nothing of mcpjail's environment reaches init
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	supervise := root
	switch {
	case root:
		// A new mount namespace too, so init can mount the PID namespace's own /proc.
		attr.Cloneflags = syscall.CLONE_NEWPID | syscall.CLONE_NEWNS
	case p.opts.Remote != nil && !p.sharedPIDNS:
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
		supervise = true
	}
	if grp != nil && grp.V2Path() != "" {
		// CLONE_INTO_CGROUP: the child is born in the jail's v2 cgroup.
		fd, err := grp.OpenV2()
		if err != nil {
			return 0, p.refuse(err)
		}
		defer fd.Close()
		attr.UseCgroupFD, attr.CgroupFD = true, int(fd.Fd())
	}
	pidfd := -1
	if p.opts.Remote != nil {
		attr.PidFD = &pidfd // the daemon identifies the child by pidfd, never by pid
	}
	cmd.SysProcAttr = attr
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, relayedSignals...)
	defer signal.Stop(sigs)
	err = cmd.Start()
	specR.Close()
	lifeR.Close()
	seccompInit.Close()
	if err != nil {
		specW.Close()
		seccompConn.Close()
		if attr.Cloneflags&syscall.CLONE_NEWUSER != 0 {
			// Unprivileged user namespaces can be off (a sysctl, an LSM):
			// runInit decides whether to go on without the PID namespace.
			return 0, &userNSError{err}
		}
		return 0, p.refuse(fmt.Errorf("start init step: %w", err))
	}
	if err := guardListener(root); err != nil {
		specW.Close()
		seccompConn.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return 0, p.refuse(err)
	}
	// Stopped once init is gone: answers what is pending, before the exit event.
	defer p.watchSeccomp(seccompConn)()
	pid := cmd.Process.Pid
	if p.opts.Remote != nil {
		err := p.opts.Remote.Attach(pidfd)
		syscall.Close(pidfd)
		if err != nil {
			specW.Close()
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return 0, p.refuse(err)
		}
	}
	spec := &initSpec{Confine: p.confineSpec(), Path: p.exe, Argv: p.opts.Argv, Env: p.env, Dir: p.opts.Workdir, Supervise: supervise}
	if grp != nil {
		if err := grp.Add(pid); err != nil {
			specW.Close()
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return 0, p.refuse(fmt.Errorf("place init step in cgroup: %w", err))
		}
	}
	// Only now, inside every hierarchy, does init learn what to run.
	if err := writeInitSpec(specW, spec); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return 0, p.refuse(err)
	}
	p.events.Emit(audit.Event{Kind: audit.KindStart, PID: pid, Target: p.exe, Verdict: audit.VerdictAllow, Layer: audit.LayerMcpjail,
		Reason: fmt.Sprintf("profile %s as %s", p.policy.Source, p.id.desc)})
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			ctx = context.Background() // signal once; then wait for the exit
		case err := <-waitErr:
			return exitCode(cmd, err)
		}
	}
}

func exitCode(cmd *exec.Cmd, err error) (int, error) {
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return 0, &Error{Code: ExitRefused, Err: fmt.Errorf("wait for init step: %w", err)}
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok {
		return 0, &Error{Code: ExitRefused, Err: errors.New("wait for init step: no wait status")}
	}
	return statusCode(ws), nil
}

func describeExit(code int) string {
	if code > exitSignalShift && code <= exitSignalShift+64 {
		return fmt.Sprintf("server ended by signal %s", syscall.Signal(code-exitSignalShift))
	}
	return fmt.Sprintf("server exited with code %d", code)
}
