package daemon

import (
	"fmt"
	"os"

	"github.com/mcpjail/mcpjail/sandbox"
	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/cgroup"
)

// builtJail is the outcome of build for a session.
type builtJail struct {
	e   *entry
	err error
}

// build makes the run's jail, its cgroup with the limits and its eBPF
// registration, with no process in it yet. It is held (and listed) from
// here, so a reload applies to it and a daemon restart finds its record.
func (d *Daemon) build(s *session, rec *jailRecord, allowDegraded bool) (*entry, error) {
	e := &entry{rec: rec}
	e.events = d.newEventLog(e, rec.Server, func(ev audit.Event) { _ = s.c.Send(&Reply{V: ProtocolVersion, Event: &ev}) })
	jail, err := sandbox.NewJail(sandbox.JailSpec{
		Name: rec.Server.Name, Instance: rec.Server.Instance, Policy: rec.Policy, Events: e.events,
		Network: d.loader, CgroupBase: d.cgroupBase, AllowDegraded: allowDegraded, Logger: d.log,
		Created: func(spec cgroup.Spec) error {
			rec.Cgroup = spec
			return d.state.save(rec)
		},
	})
	if err != nil {
		e.events.Close()
		_ = d.state.remove(rec.Server.Instance)
		return nil, err
	}
	e.jail = jail
	rec.CgroupID = jail.Group().ID()
	d.add(e)
	return e, nil
}

// move puts the client's init step into the built jail: its child and,
// when that is PID 1 of a new PID namespace, PID 1's child too (PID 2,
// started before the attach). Each is a pidfd's process, never a pid the
// client claims, the child of the one before, outside any jail.
func (d *Daemon) move(s *session, e *entry, pidfds []*os.File) error {
	rec := e.rec
	var pids []int
	parent := s.peer.PID
	for _, pidfd := range pidfds {
		pid, err := childOf(pidfd, parent, s.peer)
		if err != nil {
			return err
		}
		// Moving a jailed process into a new jail would take it out of its
		// jail's cgroup: its limits and eBPF policy would be the new profile's.
		if jail, err := cgroup.JailOf(pid); err != nil || jail != "" {
			if err == nil {
				err = fmt.Errorf("pid %d is inside the jail %s: a jailed process cannot start a jail", pid, jail)
			}
			return err
		}
		pids, parent = append(pids, pid), pid
	}
	for i, pid := range pids {
		if err := e.jail.Group().Add(pid); err != nil {
			return fmt.Errorf("move pid %d into the jail: %w", pid, err)
		}
		// Alive after the move means the pid we moved was the pidfd's
		// process: a pid is not reused while its process lives.
		if err := pidfdAlive(pidfds[i]); err != nil {
			return fmt.Errorf("the client's init step (pid %d) exited while it was moved into the jail: %w", pid, err)
		}
	}
	pid := pids[0]
	rec.PID = pid
	if err := d.state.save(rec); err != nil {
		return err
	}
	e.events.Emit(audit.Event{Kind: audit.KindStart, PID: pid, Verdict: audit.VerdictAllow, Layer: audit.LayerMcpjail,
		Reason: fmt.Sprintf("profile %s for user %s (%d), through the daemon", rec.Profile, rec.User, rec.UID)})
	return nil
}
