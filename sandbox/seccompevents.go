package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/confine"
	"github.com/mcpjail/mcpjail/sandbox/seccompnotify"
)

// seccompChannel is the socket pair on which the init step hands the
// launcher its seccomp listener (initstep.NotifyFD). The launcher
// answers the deny-list's refusals and reports them: it is the one process
// outside the jail that both runs as long as the server and writes the
// run's audit log (for a run through the daemon, the user's `mcpjail run`).
func seccompChannel() (ours, theirs *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("seccomp listener socket: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "seccomp-channel"), os.NewFile(uintptr(fds[1]), "seccomp-channel-init"), nil
}

// watchSeccomp receives the listener on conn and answers and reports the
// refusals until stop is called (after the init step exited), which also
// answers what is pending. A missing listener the init step explains, or a
// supervisor that fails, is a degraded event: refusals are never silent
// without saying so.
func (p *prepared) watchSeccomp(conn *os.File) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	degraded := func(why string) {
		p.events.Emit(audit.Event{Kind: audit.KindDegraded, Verdict: audit.VerdictAudit, Layer: audit.LayerSeccomp,
			Reason: "running without seccomp refusal events: " + why})
	}
	go func() {
		defer close(done)
		l, missing, err := seccompnotify.ReceiveListener(ctx, conn)
		conn.Close()
		switch {
		case errors.Is(err, context.Canceled): // init exited without a word
			return
		case err != nil:
			degraded(err.Error())
			return
		case missing != "":
			degraded(missing)
			return
		case l == nil: // no listener planned (Missing said so), or the init step failed and says why
			return
		}
		rules, err := seccompRules()
		if err != nil {
			l.Close()
			degraded(err.Error())
			return
		}
		rep := seccompnotify.NewReporter(p.events.Emit)
		defer rep.Close()
		if err := seccompnotify.Serve(ctx, l, rules, rep.Report); err != nil {
			degraded(fmt.Sprintf("%v (the deny-list's calls now fail with ENOSYS)", err))
		}
	}()
	return func() { cancel(); <-done }
}

// seccompRules are the supervisor's answers: the deny-list's errnos.
func seccompRules() (map[int]seccompnotify.Rule, error) {
	notified, err := confine.NotifiedSyscalls()
	if err != nil {
		return nil, err
	}
	rules := make(map[int]seccompnotify.Rule, len(notified))
	for nr, d := range notified {
		rules[nr] = seccompnotify.Rule{Name: d.Name, Errno: d.Errno, Reason: d.Reason}
	}
	return rules, nil
}

// guardListener makes an unprivileged launcher non-dumpable once the init
// step is started: the server may run as this process's uid with its
// (empty) capabilities, and must not take the listener with pidfd_getfd(2)
// or ptrace where Landlock does not stop it (and answer its own calls with
// "continue"). Not before the start: a non-dumpable parent's child gets
// root-owned /proc files, and the user namespace's uid_map could not be
// written.
func guardListener(root bool) error {
	if root {
		return nil
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("make mcpjail not dumpable: %w", err)
	}
	return nil
}
