package sandbox

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/mcpjail/mcpjail/bpf"
	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// forwardKernelEvents turns the eBPF layer's events into audit events and
// carries out on_violation for the whole jail: the kernel kills only the
// task that broke the rule, user space kills the rest of its cgroup. The
// returned stop function drains what was already decoded and waits.
//
// unclaimed, when not nil, is the loader's channel for cgroups no jail
// claims (one created below the jail): a loader of this run alone has
// nobody else to read it, and its events are this jail's.
func (j *Jail) forwardKernelEvents(unclaimed <-chan bpf.Event) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	events := j.net.Events()
	killed := false
	handle := func(ev bpf.Event) {
		e := ev.Audit(time.Now())
		if why := j.violationKill(ev); why != "" {
			e.Action = audit.ActionKill
			if !killed {
				killed = true
				if err := j.grp.Kill(); err != nil {
					why += fmt.Sprintf(" (kill failed: %v)", err)
				}
				defer j.events.Emit(audit.Event{Kind: audit.KindKill, PID: ev.PID, Comm: ev.Comm, Target: ev.Target,
					Verdict: audit.VerdictDeny, Layer: e.Layer, Action: audit.ActionKill, Reason: why})
			}
		}
		j.events.Emit(e)
	}
	go func() {
		defer close(done)
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					return
				}
				handle(ev)
			case ev, ok := <-unclaimed:
				if !ok {
					unclaimed = nil
					continue
				}
				handle(ev)
			case <-quit:
				for {
					select {
					case ev, ok := <-events:
						if !ok {
							return
						}
						handle(ev)
					default:
						return
					}
				}
			}
		}
	}()
	return func() { close(quit); <-done }
}

// violationKill says why ev ends the jail under the profile's on_violation,
// or "" when it does not.
func (j *Jail) violationKill(ev bpf.Event) string {
	policy := j.Policy()
	ov := policy.OnViolation
	switch {
	case ev.Action == audit.ActionKill:
		return fmt.Sprintf("the kernel killed the task after %s %s", ev.Kind, ev.Target)
	case ev.Verdict != audit.VerdictDeny:
		return ""
	case isNetworkKind(ev.Kind) && ov.Network == profiles.ActionKill:
		return fmt.Sprintf("on_violation network: kill after %s %s", ev.Kind, ev.Target)
	case ev.Kind == audit.KindOpen && ov.File == profiles.ActionKill:
		dir := ""
		if !filepath.IsAbs(ev.Path) {
			dir, _ = bpf.OpenDir(ev.PID, ev.DirFD) // "" when unknown: DeniedByProfile fails closed
		}
		if bpf.DeniedByProfile(policy, dir, ev.Path) {
			return fmt.Sprintf("on_violation file: kill after an open under filesystem.deny: %s", ev.Path)
		}
	}
	return ""
}

func isNetworkKind(k audit.Kind) bool {
	switch k {
	case audit.KindConnect, audit.KindSendmsg, audit.KindUnixConnect, audit.KindSocket, audit.KindEgressBudget, audit.KindAccept:
		return true
	}
	return false
}
