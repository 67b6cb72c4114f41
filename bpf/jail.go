package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/profiles"
)

// Jail is one registered cgroup: its map entries and its links.
type Jail struct {
	loader   *Loader
	cgroupID uint64
	policyID uint32
	rules    *rules
	budget   *egressBudgetState // nil: the policy has no egress budget (egress.go)
	links    []link.Link
	// linkNames name links, in order: their pin names (jailAttachments).
	linkNames []string
	route     *route
	// pinPath is the jail's pin directory under a pinned loader (jailpin.go);
	// "" when nothing of it is pinned.
	pinPath string
	adopted bool

	// closed and closeErr are guarded by loader.mu.
	closed   bool
	closeErr error
}

// CgroupID is the v2 cgroup id the jail was registered with.
func (j *Jail) CgroupID() uint64 { return j.cgroupID }

// Adopted reports whether LoadPinned found the jail pinned by an earlier
// loader, rather than this loader's Register creating it.
func (j *Jail) Adopted() bool { return j.adopted }

// Register enforces p's network rules on every task in the v2 cgroup at
// cgroupPath, whose id must be cgroupID. Enforcement is live when it returns.
// On error nothing of the jail remains in the kernel. The jail's events go
// to its Events channel from the start. Under a pinned loader the jail's
// links are pinned too, and outlive this process until Jail.Close.
//
// The programs are attached to the jail's own cgroup, not to a shared parent:
// they then never run for any other process on the host (zero cost outside
// jails), and detaching is closing this jail's links. Because a program only
// runs inside a registered jail, a task whose cgroup has no entry (a cgroup
// created below the jail) is denied rather than let through.
func (l *Loader) Register(cgroupID uint64, cgroupPath string, p *profiles.Policy) (_ *Jail, err error) {
	if p == nil {
		return nil, errors.New("register jail: no policy")
	}
	if err := checkCgroup(cgroupID, cgroupPath); err != nil {
		return nil, fmt.Errorf("register jail %s: %w", cgroupPath, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("register jail: eBPF loader is closed")
	}
	if _, dup := l.jails[cgroupID]; dup {
		return nil, fmt.Errorf("register jail %s: cgroup id %d is already registered", cgroupPath, cgroupID)
	}
	policyID, err := l.allocPolicy()
	if err != nil {
		return nil, fmt.Errorf("register jail %s: %w", cgroupPath, err)
	}
	if err := l.checkRequired(p); err != nil {
		return nil, fmt.Errorf("register jail %s: %w", cgroupPath, err)
	}
	r, err := compileRules(policyID, p.Network)
	if err != nil {
		return nil, fmt.Errorf("register jail %s: %w", cgroupPath, err)
	}
	if r.fs, err = l.compileJailFSRules(policyID, p); err != nil {
		return nil, fmt.Errorf("register jail %s: %w", cgroupPath, err)
	}
	budget, err := newBudgetState(p)
	if err != nil {
		return nil, fmt.Errorf("register jail %s: %w", cgroupPath, err)
	}
	j := &Jail{loader: l, cgroupID: cgroupID, policyID: policyID, rules: r, budget: budget}
	// Before anything is attached, so that no event of the jail goes elsewhere.
	j.route = l.addRoute(cgroupID, true)
	defer func() {
		if err != nil {
			l.retireRoute(cgroupID, j.route)
			if rerr := j.release(); rerr != nil {
				// The map is ours: a failed delete here means a kernel error, not a policy one.
				l.logger.Error("roll back refused jail registration", "err", rerr)
				err = errors.Join(err, rerr)
			}
		}
	}()
	if err := j.insert(p.OnViolation); err != nil {
		return nil, fmt.Errorf("register jail %s: %w", cgroupPath, err)
	}
	if err := j.attach(cgroupPath); err != nil {
		return nil, fmt.Errorf("register jail %s: %w", cgroupPath, err)
	}
	if err := j.applyBudget(cgroupPath); err != nil {
		return nil, fmt.Errorf("register jail %s: %w", cgroupPath, err)
	}
	if l.pin != nil {
		if err := j.pinLinks(); err != nil {
			return nil, fmt.Errorf("register jail %s: %w", cgroupPath, err)
		}
	}
	l.policies[policyID] = true
	l.jails[cgroupID] = j
	return j, nil
}

// checkCgroup makes sure the path is a cgroup v2 directory with that id, so
// that a mismatch cannot leave a jail attached elsewhere than its policy.
func checkCgroup(id uint64, path string) error {
	if id == 0 || path == "" {
		return errors.New("need a cgroup v2 id and directory")
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fmt.Errorf("statfs: %w", err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return errors.New("not on a cgroup v2 filesystem")
	}
	var s unix.Stat_t
	if err := unix.Stat(path, &s); err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	if s.Ino != id {
		return fmt.Errorf("cgroup id is %d, not %d", s.Ino, id)
	}
	return nil
}

// allocPolicy returns an unused policy id (never 0). Called with l.mu held.
func (l *Loader) allocPolicy() (uint32, error) {
	if len(l.policies) >= MaxJails {
		return 0, fmt.Errorf("%d jails are registered, the most this loader holds", MaxJails)
	}
	for {
		id := l.nextPolicy
		l.nextPolicy++
		if l.nextPolicy == 0 {
			l.nextPolicy = 1
		}
		if !l.policies[id] {
			return id, nil
		}
	}
}

// insert writes the rules, then the jails entry that makes them reachable.
func (j *Jail) insert(ov profiles.OnViolation) error {
	m := j.loader.ruleMaps()
	if err := j.rules.write(m); err != nil {
		return err
	}
	v := netJail{Policy: j.policyID}
	v.Flags = violationFlags(ov)
	if err := m.McpjailJails.Update(j.cgroupID, &v, ebpf.UpdateNoExist); err != nil {
		return fmt.Errorf("add jail entry: %w", err)
	}
	return nil
}

// attachment is one program attached to a jail's cgroup.
type attachment struct {
	name string // pin name under the jail's pin directory
	prog *ebpf.Program
	at   ebpf.AttachType
}

// jailAttachments lists the programs attached to every jail's cgroup: the
// UNIX ones only where the kernel loaded them (Loader.Missing reports their
// absence). The egress budget's (egress.go) is apart: only some jails have it;
// the accept rule's, on the same hook, is for every jail.
func (l *Loader) jailAttachments() []attachment {
	p := &l.objs
	all := []attachment{
		{"connect4", p.McpjailConn4, ebpf.AttachCGroupInet4Connect},
		{"connect6", p.McpjailConn6, ebpf.AttachCGroupInet6Connect},
		{"sendmsg4", p.McpjailSend4, ebpf.AttachCGroupUDP4Sendmsg},
		{"sendmsg6", p.McpjailSend6, ebpf.AttachCGroupUDP6Sendmsg},
		{"sock_create", p.McpjailSock, ebpf.AttachCGroupInetSockCreate},
		{"accept", l.budget.Accept, ebpf.AttachCGroupInetEgress},
	}
	if l.unixErr == nil {
		all = append(all, attachment{"connect_unix", p.McpjailConnun, ebpf.AttachCgroupUnixConnect},
			attachment{"sendmsg_unix", p.McpjailSendun, ebpf.AttachCgroupUnixSendmsg})
	}
	return all
}

// attach links every program of jailAttachments to the jail's cgroup.
func (j *Jail) attach(cgroupPath string) error {
	for _, a := range j.loader.jailAttachments() {
		lk, err := link.AttachCgroup(link.CgroupOptions{Path: cgroupPath, Attach: a.at, Program: a.prog})
		if err != nil {
			return fmt.Errorf("attach %s: %w", a.at, err)
		}
		j.links = append(j.links, lk)
		j.linkNames = append(j.linkNames, a.name)
	}
	return nil
}

// Close detaches the jail's programs, removes its map entries and, under a
// pinned loader, its pins. Detaching comes first so that no program runs
// for the jail without its entries. The jail's Events channel is closed
// once the records written before Close have been delivered on it.
//
// Once a pinned loader is closed, its jails stay pinned and enforced, and
// Close of such a jail is an error: the next LoadPinned adopts it.
func (j *Jail) Close() error {
	l := j.loader
	l.mu.Lock()
	defer l.mu.Unlock()
	if j.closed {
		return j.closeErr
	}
	if l.closed && l.pin != nil {
		return fmt.Errorf("unregister jail (cgroup id %d): the pinned eBPF loader is closed; the jail stays pinned for the next one to adopt", j.cgroupID)
	}
	if err := j.uncommitPins(); err != nil {
		// Nothing changed yet: the jail stays whole, and Close can be tried again.
		return fmt.Errorf("unregister jail (cgroup id %d): %w", j.cgroupID, err)
	}
	j.closed = true
	j.closeErr = j.release()
	delete(l.jails, j.cgroupID)
	delete(l.policies, j.policyID)
	l.retireRoute(j.cgroupID, j.route)
	return j.closeErr
}

// release closes links and deletes every entry of the jail; entries that
// were never written are not an error.
func (j *Jail) release() error {
	var errs []error
	if j.pinPath != "" {
		// Before the links close: a pin would keep its link attached.
		errs = append(errs, j.unpinLinks())
	}
	errs = append(errs, closeLinks("jail program", j.links))
	j.links, j.linkNames = nil, nil
	if err := j.removeBudget(); err != nil {
		errs = append(errs, err)
	}
	m := &j.loader.objs.netMaps
	del := func(what string, mp *ebpf.Map, key any) {
		if err := mp.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", what, err))
		}
	}
	del("jail entry", m.McpjailJails, j.cgroupID)
	// After the jail entry: no program saves arguments for the jail any more.
	if err := j.loader.watch.purgePending(j.cgroupID); err != nil {
		errs = append(errs, err)
	}
	if err := j.rules.remove(j.loader.ruleMaps()); err != nil {
		errs = append(errs, err)
	}
	if j.pinPath != "" && errors.Join(errs...) == nil {
		// Last: a directory left behind tells the next LoadPinned to finish the job.
		errs = append(errs, j.removePinDir())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("unregister jail (cgroup id %d): %w", j.cgroupID, err)
	}
	return nil
}

// violationFlags turns on_violation into jail.flags bits. A profile that
// says nothing gets profiles.DefaultOnViolation from Compile, not here.
func violationFlags(ov profiles.OnViolation) uint32 {
	var f uint32
	if ov.Network == profiles.ActionKill {
		f |= jailKillOnNetwork
	}
	if ov.Exec == profiles.ActionKill {
		f |= jailKillOnExec
	}
	if ov.File == profiles.ActionKill {
		f |= jailKillOnFile
	}
	return f
}
