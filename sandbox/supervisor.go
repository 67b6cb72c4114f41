package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/cgroup"
	"github.com/mcpjail/mcpjail/sandbox/initstep"
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

func exitCode(cmd *exec.Cmd, err error) (int, error) {
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return 0, &Error{Code: ExitRefused, Err: fmt.Errorf("wait for init step: %w", err)}
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok {
		return 0, &Error{Code: ExitRefused, Err: errors.New("wait for init step: no wait status")}
	}
	return initstep.StatusCode(ws), nil
}

func describeExit(code int) string { return "server " + describeStatus(code) }

// describeStatus words a shell-style exit code: 128+N is signal N.
func describeStatus(code int) string {
	if code > exitSignalShift && code <= exitSignalShift+64 {
		return fmt.Sprintf("ended by signal %s", syscall.Signal(code-exitSignalShift))
	}
	return fmt.Sprintf("exited with code %d", code)
}
