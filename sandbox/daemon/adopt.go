package daemon

import (
	"time"

	"github.com/mcpjail/mcpjail/bpf"
	"github.com/mcpjail/mcpjail/sandbox"
	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/cgroup"
)

// emptyPoll is how often an adopted jail is checked for processes. Its
// client is gone (it talked to the previous daemon), so the jail's end is
// seen on the cgroup; a second's delay only postpones the cleanup.
const emptyPoll = time.Second

// removeTimeout bounds the wait for a killed jail to empty.
const removeTimeout = 20 * time.Second

// adopt takes over the jails a previous daemon left running. A jail whose
// eBPF registration is gone cannot be enforced as its profile says, so it
// is killed: fail closed. Called before the socket is served.
func (d *Daemon) adopt() error {
	recs, errs := d.state.load()
	for _, err := range errs {
		d.log.Error("cannot adopt a jail", "err", err)
	}
	pinned := map[uint64]*bpf.Jail{}
	for _, j := range d.loader.Jails() {
		pinned[j.CgroupID()] = j
	}
	for _, rec := range recs {
		grp := cgroup.FromSpec(rec.Cgroup)
		e := &entry{rec: rec, adopted: true}
		e.events = d.newEventLog(e, rec.Server)
		net := pinned[rec.CgroupID]
		delete(pinned, rec.CgroupID)
		procs, perr := grp.Procs()
		switch {
		case net == nil || grp.ID() != rec.CgroupID:
			e.jail = sandbox.AdoptJail(grp, net, d.loader, rec.Policy, e.events, d.log)
			d.add(e)
			e.events.Emit(audit.Event{Kind: audit.KindKill, Verdict: audit.VerdictDeny, Layer: audit.LayerMcpjail, Action: audit.ActionKill,
				Reason: "adopting after a daemon restart: the jail's eBPF registration is gone, so it is killed"})
			d.release(e)
			continue
		case rec.Declared:
			// Its supervisor died with the old daemon; this one starts the
			// declared servers afresh, so the old instance must go.
			e.jail = sandbox.AdoptJail(grp, net, d.loader, rec.Policy, e.events, d.log)
			d.add(e)
			d.release(e)
			continue
		case perr != nil || len(procs) == 0:
			e.jail = sandbox.AdoptJail(grp, net, d.loader, rec.Policy, e.events, d.log)
			d.add(e)
			d.release(e) // ended while no daemon watched
			continue
		}
		e.jail = sandbox.AdoptJail(grp, net, d.loader, rec.Policy, e.events, d.log)
		d.add(e)
		d.log.Info("adopted jail", "server", rec.Server.Name, "instance", rec.Server.Instance, "pid", rec.PID)
		go d.watchAdopted(e)
	}
	for id, j := range pinned {
		// Registered but unknown to the state directory: keep enforcing it
		// (it may hold a running server) and say so; --cleanup removes it.
		d.log.Error("pinned eBPF jail without a state record: left enforced; run mcpjail daemon --cleanup to remove", "cgroup_id", id)
		_ = j
	}
	return nil
}

// watchAdopted releases an adopted jail when its last process is gone.
func (d *Daemon) watchAdopted(e *entry) {
	t := time.NewTicker(emptyPoll)
	defer t.Stop()
	for range t.C { // ends with the process: a stopping daemon leaves jails running
		procs, err := e.jail.Group().Procs()
		if err != nil || len(procs) == 0 {
			d.release(e)
			return
		}
	}
}
