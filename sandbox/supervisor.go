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

	"github.com/mcpjail/mcpjail/bpf"
	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/cgroup"
	"github.com/mcpjail/mcpjail/sandbox/sockdiag"
)

// cleanupTimeout bounds the wait for a killed jail to empty.
const cleanupTimeout = 20 * time.Second

// eventSyncTimeout bounds the wait for the jail's last kernel events.
const eventSyncTimeout = 2 * time.Second

// launch creates the jail, starts the init step inside it, relays signals
// until the server exits, and removes the jail. Everything it creates is
// announced to the cleanup guard first, so mcpjail's own death leaks nothing.
func (p *prepared) launch(ctx context.Context) (int, error) {
	root := os.Geteuid() == 0
	g, err := startGuard()
	if err != nil {
		return 0, p.refuse(err)
	}
	defer g.finish()
	defer os.RemoveAll(p.tmpDir)
	if err := g.announce(guardMsg{TmpDir: p.tmpDir}); err != nil {
		return 0, p.refuse(err)
	}
	var j jailResources
	// One teardown for every path, in the order that keeps enforcement on
	// until nothing of the jail runs: processes killed and cgroup removed,
	// then the eBPF programs detached, then the last events read.
	defer j.teardown(p)
	if root {
		var missing []string
		j.grp, missing, err = cgroup.Create(safeName(p.events.Server().Name)+"-"+p.instance, p.policy.Limits)
		if err != nil {
			return 0, p.refuse(fmt.Errorf("create cgroup: %w", err))
		}
		spec := j.grp.Spec()
		if err := g.announce(guardMsg{Cgroup: &spec}); err != nil {
			return 0, p.refuse(err)
		}
		if len(missing) > 0 {
			if !p.opts.AllowDegraded {
				return 0, p.refuse(fmt.Errorf("missing cgroup limits: %v (use --allow-degraded to run without them)", missing))
			}
			for _, m := range missing {
				p.events.Emit(audit.Event{Kind: audit.KindDegraded, Verdict: audit.VerdictAudit, Layer: audit.LayerCgroup, Reason: "running without " + m})
			}
		}
		if p.network != nil {
			// Enforcement is live before the init step exists.
			if j.net, err = p.network.Register(j.grp.ID(), j.grp.V2Path(), p.policy); err != nil {
				return 0, p.refuse(fmt.Errorf("register the jail with the eBPF layer: %w", err))
			}
			j.stopEvents = p.forwardKernelEvents(j.grp)
		}
	}
	code, err := p.runInit(ctx, j.grp, root)
	if err != nil {
		return 0, err
	}
	var oomKills uint64
	if j.grp != nil { // read before teardown removes the cgroup's files
		oomKills, _ = j.grp.OOMKills()
	}
	j.teardown(p)
	if oomKills > 0 {
		p.events.Emit(audit.Event{Kind: audit.KindLimit, Target: "memory", Verdict: audit.VerdictDeny, Layer: audit.LayerCgroup, Action: audit.ActionKill,
			Reason: fmt.Sprintf("memory limit of %d bytes reached: %d process(es) OOM-killed", p.policy.Limits.MemoryBytes, oomKills)})
	}
	exit := code
	p.events.Emit(audit.Event{Kind: audit.KindExit, Verdict: audit.VerdictAllow, Layer: audit.LayerMcpjail, ExitCode: &exit, Reason: describeExit(code)})
	return code, nil
}

// jailResources is what launch created; teardown releases it once.
type jailResources struct {
	grp        *cgroup.Group
	net        *bpf.Jail
	stopEvents func()
	done       bool
}

func (j *jailResources) teardown(p *prepared) {
	if j.done {
		return
	}
	j.done = true
	if j.grp != nil {
		p.removeGroup(j.grp)
	}
	if j.net != nil {
		// Orphaned sockets outlive their processes and would send what is
		// left in their queues unfiltered once the programs are detached.
		if _, err := sockdiag.DestroyCgroupSockets(j.grp.ID()); err != nil {
			p.opts.Logger.Error("destroy the jail's sockets", "err", err)
		}
		if err := j.net.Close(); err != nil {
			p.opts.Logger.Error("detach eBPF programs", "err", err)
		}
	}
	if j.stopEvents != nil {
		ctx, cancel := context.WithTimeout(context.Background(), eventSyncTimeout)
		if err := p.network.Sync(ctx); err != nil {
			p.opts.Logger.Error("read the jail's last eBPF events", "err", err)
		}
		cancel()
		j.stopEvents()
		p.events.Flush()
		if n, err := p.network.Lost(); err == nil && n > 0 {
			p.events.Emit(audit.Event{Kind: audit.KindLost, Verdict: audit.VerdictAudit, Layer: audit.LayerBPF, Count: int(n),
				Reason: fmt.Sprintf("%d kernel event record(s) lost: the ring buffer was full", n)})
		}
	}
}

func (p *prepared) removeGroup(grp *cgroup.Group) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := grp.Remove(ctx); err != nil {
		p.opts.Logger.Error("remove jail cgroup", "err", err)
	}
}

// runInit starts the init step and waits for it. The child is started and
// waited for on one locked OS thread: the parent-death signal fires when the
// creating thread exits, not the process, and Go may retire idle threads.
func (p *prepared) runInit(ctx context.Context, grp *cgroup.Group, root bool) (int, error) {
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		code, err := p.startAndWait(ctx, grp, root)
		done <- result{code, err}
	}()
	r := <-done
	return r.code, r.err
}

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
	cmd := exec.Command(self, initArg)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{specR, lifeR} // fds 3 and 4
	cmd.Env = []string{}                      // nothing of mcpjail's environment reaches init
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if root {
		// A new mount namespace too, so init can mount the PID namespace's own /proc.
		attr.Cloneflags = syscall.CLONE_NEWPID | syscall.CLONE_NEWNS
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
	cmd.SysProcAttr = attr
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, relayedSignals...)
	defer signal.Stop(sigs)
	err = cmd.Start()
	specR.Close()
	lifeR.Close()
	if err != nil {
		specW.Close()
		return 0, p.refuse(fmt.Errorf("start init step: %w", err))
	}
	pid := cmd.Process.Pid
	spec := &initSpec{Confine: p.confineSpec(), Path: p.exe, Argv: p.opts.Argv, Env: p.env, Dir: p.opts.Workdir, Supervise: root}
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
