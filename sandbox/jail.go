package sandbox

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/mcpjail/mcpjail/bpf"
	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/cgroup"
	"github.com/mcpjail/mcpjail/sandbox/sockdiag"
)

// JailSpec describes the privileged side of one run.
type JailSpec struct {
	// Name becomes part of the cgroup's name, with the instance id.
	Name, Instance string
	Policy         *profiles.Policy
	Events         *audit.Log
	// Network is the eBPF layer; nil when the run goes without it.
	Network *bpf.Loader
	// OwnLoader says Network serves this jail alone (a standalone run), so
	// the jail also takes the events no jail claims.
	OwnLoader     bool
	AllowDegraded bool
	Logger        *slog.Logger
	// CgroupBase is where the cgroup goes (the daemon's, see
	// cgroup.Delegate); nil means below the caller's own cgroup.
	CgroupBase *cgroup.Base
	// Created is called with the cgroup as soon as it exists and before
	// anything else is done with it, so that its owner's death leaks nothing
	// (the standalone launcher announces it to its cleanup guard).
	Created func(cgroup.Spec) error
}

// Jail is what privileged code holds for one run: the cgroup with its
// limits, the eBPF registration, and the forwarding of kernel events into
// the run's audit log with on_violation's kills. The standalone root
// launcher and the daemon both make jails with NewJail.
type Jail struct {
	mu         sync.Mutex // guards policy, which a reload replaces
	policy     *profiles.Policy
	events     *audit.Log
	logger     *slog.Logger
	grp        *cgroup.Group
	loader     *bpf.Loader
	net        *bpf.Jail
	stopEvents func()
	lostAt     uint64 // the loader's lost count when the jail started

	stopOnce  sync.Once
	closeOnce sync.Once
	oomKills  uint64
}

// NewJail creates the cgroup with the policy's limits and registers the
// policy with the eBPF layer; enforcement is live when it returns. A limit
// the kernel cannot apply is refused unless AllowDegraded, in which case it
// is reported as a degraded event. On error nothing of the jail remains.
func NewJail(spec JailSpec) (_ *Jail, err error) {
	if spec.Logger == nil {
		spec.Logger = slog.Default()
	}
	j := &Jail{policy: spec.Policy, events: spec.Events, logger: spec.Logger, loader: spec.Network}
	grp, missing, err := cgroup.CreateIn(spec.CgroupBase, safeName(spec.Name)+"-"+spec.Instance, spec.Policy.Limits)
	if err != nil {
		return nil, fmt.Errorf("create cgroup: %w", err)
	}
	j.grp = grp
	defer func() {
		if err != nil {
			j.Close()
		}
	}()
	if spec.Created != nil {
		if err := spec.Created(grp.Spec()); err != nil {
			return nil, err
		}
	}
	if len(missing) > 0 {
		if !spec.AllowDegraded {
			return nil, fmt.Errorf("missing cgroup limits: %v (use --allow-degraded to run without them)", missing)
		}
		for _, m := range missing {
			j.events.Emit(audit.Event{Kind: audit.KindDegraded, Verdict: audit.VerdictAudit, Layer: audit.LayerCgroup, Reason: "running without " + m})
		}
	}
	if spec.Network != nil {
		j.lostAt, _ = spec.Network.Lost()
		if j.net, err = spec.Network.Register(grp.ID(), grp.V2Path(), spec.Policy); err != nil {
			return nil, fmt.Errorf("register the jail with the eBPF layer: %w", err)
		}
		var unclaimed <-chan bpf.Event
		if spec.OwnLoader {
			unclaimed = spec.Network.Events()
		}
		j.stopEvents = j.forwardKernelEvents(unclaimed)
	}
	return j, nil
}

// AdoptJail takes over a jail that an earlier process created and left
// running (the daemon after a restart): net is its eBPF registration as the
// pinned loader re-created it, or nil.
func AdoptJail(grp *cgroup.Group, net *bpf.Jail, loader *bpf.Loader, policy *profiles.Policy, events *audit.Log, logger *slog.Logger) *Jail {
	if logger == nil {
		logger = slog.Default()
	}
	j := &Jail{policy: policy, events: events, logger: logger, grp: grp, loader: loader, net: net}
	if net != nil && loader != nil {
		j.lostAt, _ = loader.Lost()
		j.stopEvents = j.forwardKernelEvents(nil)
	}
	return j
}

// Group is the jail's cgroup.
func (j *Jail) Group() *cgroup.Group { return j.grp }

// Policy is the policy the jail enforces.
func (j *Jail) Policy() *profiles.Policy {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.policy
}

// UpdatePolicy replaces the jail's network rules and on_violation actions
// while it runs (the eBPF rules in one map update). Landlock rules and
// cgroup limits stay as they were applied.
func (j *Jail) UpdatePolicy(p *profiles.Policy) error {
	if j.net != nil {
		if err := j.net.Update(p); err != nil {
			return fmt.Errorf("replace the jail's eBPF rules: %w", err)
		}
	}
	j.mu.Lock()
	j.policy = p
	j.mu.Unlock()
	return nil
}

// EgressBytes is what the jail sent in its current egress-budget window;
// false when its policy has no budget or there is no eBPF layer.
func (j *Jail) EgressBytes() (uint64, bool) {
	if j.net == nil || j.Policy().Network.EgressBudget == nil {
		return 0, false
	}
	u, err := j.net.EgressUsage()
	if err != nil {
		return 0, false
	}
	return u.Bytes, true
}

// Stop ends everything that runs in the jail and delivers its events: the
// processes are killed and the cgroup removed, every kernel event written
// until then is read, and lost records and OOM kills are reported (OOM
// kills are read before the cgroup's files go). The eBPF programs stay
// attached until Close, so orphaned sockets remain filtered, and what they
// write meanwhile still reaches the jail's log. Safe to call more than once.
func (j *Jail) Stop() {
	j.stopOnce.Do(j.stop)
}

// Close tears the jail down in the order that keeps enforcement on until
// nothing of it runs: Stop, then the jail's sockets destroyed and its eBPF
// programs detached, then its last events read. Safe to call more than once.
func (j *Jail) Close() {
	j.closeOnce.Do(func() {
		j.Stop()
		j.detach()
	})
}

func (j *Jail) stop() {
	if n, err := j.grp.OOMKills(); err == nil && n > 0 {
		j.oomKills = n
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	if err := j.grp.Remove(ctx); err != nil {
		j.logger.Error("remove jail cgroup", "err", err)
	}
	cancel()
	if j.stopEvents != nil {
		j.syncEvents()
		if n, err := j.loader.Lost(); err == nil && n > j.lostAt {
			lost := n - j.lostAt
			j.events.Emit(audit.Event{Kind: audit.KindLost, Verdict: audit.VerdictAudit, Layer: audit.LayerBPF, Count: int(lost),
				Reason: fmt.Sprintf("%d kernel event record(s) lost while the jail ran: the ring buffer was full", lost)})
		}
	}
	if j.oomKills > 0 {
		j.events.Emit(audit.Event{Kind: audit.KindLimit, Target: "memory", Verdict: audit.VerdictDeny, Layer: audit.LayerCgroup, Action: audit.ActionKill,
			Reason: fmt.Sprintf("memory limit of %d bytes reached: %d process(es) OOM-killed", j.Policy().Limits.MemoryBytes, j.oomKills)})
	}
}

func (j *Jail) detach() {
	if j.net != nil {
		// Orphaned sockets outlive their processes and would send what is
		// left in their queues unfiltered once the programs are detached.
		if _, err := sockdiag.DestroyCgroupSockets(j.grp.ID()); err != nil {
			j.logger.Error("destroy the jail's sockets", "err", err)
		}
		if err := j.net.Close(); err != nil {
			j.logger.Error("detach eBPF programs", "err", err)
		}
	}
	if j.stopEvents != nil {
		j.syncEvents()
		j.stopEvents()
		j.events.Flush()
	}
}

// syncEvents reads every kernel event written so far into the jail's log.
func (j *Jail) syncEvents() {
	ctx, cancel := context.WithTimeout(context.Background(), eventSyncTimeout)
	defer cancel()
	if err := j.loader.Sync(ctx); err != nil {
		j.logger.Error("read the jail's last eBPF events", "err", err)
	}
	j.events.Flush()
}
