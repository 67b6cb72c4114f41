package daemon

import (
	"sync"
	"sync/atomic"

	"github.com/mcpjail/mcpjail/sandbox"
	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// entry is one jail the daemon holds.
type entry struct {
	rec     *jailRecord
	jail    *sandbox.Jail
	events  *audit.Log
	adopted bool

	violations atomic.Int64
	kills      atomic.Int64
	closeOnce  sync.Once
}

// newEventLog is the jail's audit log: no human stream, every written event
// counted and published, and also handed to each extra sink (its client).
func (d *Daemon) newEventLog(e *entry, server audit.Server, extra ...func(audit.Event)) *audit.Log {
	log, _ := audit.Open(server, nil, "") // without a file, Open cannot fail
	log.AddSink(func(ev audit.Event) {
		n := int64(max(ev.Count, 1))
		if ev.Verdict == audit.VerdictDeny {
			e.violations.Add(n)
		}
		if ev.Kind == audit.KindKill {
			e.kills.Add(1)
		}
		d.hub.publish(ev, e.rec.UID)
	})
	for _, f := range extra {
		log.AddSink(f)
	}
	return log
}

func (d *Daemon) add(e *entry) {
	d.mu.Lock()
	d.jails[e.rec.Server.Instance] = e
	d.mu.Unlock()
	if d.opts.Metrics != nil {
		d.opts.Metrics.JailStarted(e.rec.Server.Name)
	}
}

// release tears the jail down once: every process killed, cgroup removed,
// eBPF registration and pins removed, last events published, state deleted.
func (d *Daemon) release(e *entry) {
	e.closeOnce.Do(func() {
		if e.jail != nil {
			e.jail.Close()
		}
		if e.adopted {
			// Its client talked to the previous daemon and may be gone too.
			removeRunTmp(e.rec, d.log)
		}
		e.events.Close()
		if err := d.state.remove(e.rec.Server.Instance); err != nil {
			d.log.Error("jail state", "instance", e.rec.Server.Instance, "err", err)
		}
		d.mu.Lock()
		_, held := d.jails[e.rec.Server.Instance]
		delete(d.jails, e.rec.Server.Instance)
		d.mu.Unlock()
		if held && d.opts.Metrics != nil {
			d.opts.Metrics.JailStopped(e.rec.Server.Name)
			d.opts.Metrics.DropJail(e.rec.Server.Name, e.rec.Server.Instance)
		}
		d.log.Info("jail released", "server", e.rec.Server.Name, "instance", e.rec.Server.Instance)
	})
}
