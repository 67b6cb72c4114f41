package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/mcpjail/mcpjail/profiles"
)

// Update replaces the jail's network rules and on_violation flags while it
// runs (a daemon's reload). The new rules are written under a fresh policy
// id, then the jail's entry is switched to it in one map update, so a
// program sees the old policy or the new one, never a mix; the old rules
// are deleted last. The egress budget stays as registered. On error the
// jail keeps its old policy and nothing of the new one remains.
func (j *Jail) Update(p *profiles.Policy) error {
	if p == nil {
		return errors.New("update jail: no policy")
	}
	l := j.loader
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || j.closed {
		return errors.New("update jail: the jail or its loader is closed")
	}
	id, err := l.allocPolicy()
	if err != nil {
		return fmt.Errorf("update jail (cgroup id %d): %w", j.cgroupID, err)
	}
	if err := l.checkRequired(p); err != nil {
		return fmt.Errorf("update jail (cgroup id %d): %w", j.cgroupID, err)
	}
	r, err := compileRules(id, p.Network)
	if err != nil {
		return fmt.Errorf("update jail (cgroup id %d): %w", j.cgroupID, err)
	}
	if r.fs, err = l.compileJailFSRules(id, p); err != nil {
		return fmt.Errorf("update jail (cgroup id %d): %w", j.cgroupID, err)
	}
	m := l.ruleMaps()
	if err := r.write(m); err != nil {
		return errors.Join(fmt.Errorf("update jail (cgroup id %d): %w", j.cgroupID, err), r.remove(m))
	}
	v := netJail{Policy: id, Flags: violationFlags(p.OnViolation)}
	if err := m.McpjailJails.Update(j.cgroupID, &v, ebpf.UpdateExist); err != nil {
		return errors.Join(fmt.Errorf("update jail (cgroup id %d): switch policy: %w", j.cgroupID, err), r.remove(m))
	}
	old, oldID := j.rules, j.policyID
	j.rules, j.policyID = r, id
	l.policies[id] = true
	delete(l.policies, oldID)
	if err := old.remove(m); err != nil {
		// Unreachable (no jail names the old id) but taking map space.
		return fmt.Errorf("update jail (cgroup id %d): the new policy is live; removing the old rules: %w", j.cgroupID, err)
	}
	return nil
}

// ruleMaps are the maps a policy's rules live in.
type ruleMaps struct {
	*netMaps
	fs   *ebpf.Map // the BPF-LSM filesystem rules (lsm.go)
	bind *ebpf.Map // network.bind's ports (egress.go)
}

func (l *Loader) ruleMaps() ruleMaps {
	return ruleMaps{netMaps: &l.objs.netMaps, fs: l.lsm.objs.McpjailFsrules, bind: l.budget.Bind}
}

// write adds every rule; entries already present are an error.
func (r *rules) write(m ruleMaps) error {
	for _, e := range r.egress4 {
		if err := m.McpjailEgress4.Update(&e.key, &e.value, ebpf.UpdateNoExist); err != nil {
			return fmt.Errorf("add IPv4 egress rule: %w", err)
		}
	}
	for _, e := range r.egress6 {
		if err := m.McpjailEgress6.Update(&e.key, &e.value, ebpf.UpdateNoExist); err != nil {
			return fmt.Errorf("add IPv6 egress rule: %w", err)
		}
	}
	for _, k := range r.unix {
		if err := m.McpjailUnix.Update(&k, uint8(1), ebpf.UpdateNoExist); err != nil {
			return fmt.Errorf("add UNIX socket rule: %w", err)
		}
	}
	for _, e := range r.fs {
		if err := m.fs.Update(&e.key, e.value, ebpf.UpdateNoExist); err != nil {
			return fmt.Errorf("add BPF-LSM filesystem rule: %w", err)
		}
	}
	if r.bind != nil {
		if err := m.bind.Update(r.bind.policy, &r.bind.ports, ebpf.UpdateNoExist); err != nil {
			return fmt.Errorf("add network.bind ports: %w", err)
		}
	}
	return nil
}

// remove deletes every rule; entries already gone are not an error.
func (r *rules) remove(m ruleMaps) error {
	var errs []error
	del := func(what string, mp *ebpf.Map, key any) {
		if err := mp.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", what, err))
		}
	}
	for _, e := range r.egress4 {
		del("IPv4 egress rule", m.McpjailEgress4, &e.key)
	}
	for _, e := range r.egress6 {
		del("IPv6 egress rule", m.McpjailEgress6, &e.key)
	}
	for _, k := range r.unix {
		del("UNIX socket rule", m.McpjailUnix, &k)
	}
	for _, e := range r.fs {
		del("BPF-LSM filesystem rule", m.fs, &e.key)
	}
	if r.bind != nil {
		del("network.bind ports", m.bind, r.bind.policy)
	}
	return errors.Join(errs...)
}
