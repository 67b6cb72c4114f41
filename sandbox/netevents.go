package sandbox

import (
	"fmt"
	"time"

	"github.com/mcpjail/mcpjail/bpf"
	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/cgroup"
)

// forwardNetworkEvents turns the eBPF layer's events into audit events and
// carries out on_violation for the whole jail. The returned stop function
// drains what was already decoded and waits for the forwarder to end.
func (p *prepared) forwardNetworkEvents(grp *cgroup.Group) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	events := p.network.Events()
	killed := false
	handle := func(ev bpf.Event) {
		e := ev.Audit(time.Now())
		if ev.Verdict == audit.VerdictDeny && p.policy.OnViolation.Network == profiles.ActionKill && isNetworkKind(ev.Kind) {
			e.Action = audit.ActionKill
			if !killed {
				killed = true
				// The calling task was refused already; the rest of the tree goes too.
				err := grp.Kill()
				reason := fmt.Sprintf("on_violation network: kill after %s %s", ev.Kind, ev.Target)
				if err != nil {
					reason += fmt.Sprintf(" (kill failed: %v)", err)
				}
				defer p.events.Emit(audit.Event{Kind: audit.KindKill, PID: ev.PID, Comm: ev.Comm, Target: ev.Target,
					Verdict: audit.VerdictDeny, Layer: audit.LayerBPF, Action: audit.ActionKill, Reason: reason})
			}
		}
		p.events.Emit(e)
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

func isNetworkKind(k audit.Kind) bool {
	switch k {
	case audit.KindConnect, audit.KindSendmsg, audit.KindUnixConnect, audit.KindSocket, audit.KindEgressBudget:
		return true
	}
	return false
}
