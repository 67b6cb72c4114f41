package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// rulesByPolicy reads every rule entry of the pinned maps, by policy id.
func (l *Loader) rulesByPolicy() (map[uint32]*rules, error) {
	by := map[uint32]*rules{}
	of := func(policy uint32) *rules {
		if by[policy] == nil {
			by[policy] = &rules{}
		}
		return by[policy]
	}
	m := &l.objs.netMaps
	var (
		k4  netEgress4Key
		k6  netEgress6Key
		ku  netUnixKey
		ps  netPortSet
		one uint8
	)
	it := m.McpjailEgress4.Iterate()
	for it.Next(&k4, &ps) {
		r := of(k4.Policy)
		r.egress4 = append(r.egress4, egress4Entry{k4, ps})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read IPv4 egress rules: %w", err)
	}
	it = m.McpjailEgress6.Iterate()
	for it.Next(&k6, &ps) {
		r := of(k6.Policy)
		r.egress6 = append(r.egress6, egress6Entry{k6, ps})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read IPv6 egress rules: %w", err)
	}
	it = m.McpjailUnix.Iterate()
	for it.Next(&ku, &one) {
		r := of(ku.Policy)
		r.unix = append(r.unix, ku)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read UNIX socket rules: %w", err)
	}
	var (
		policy uint32
		bind   egressPortSet
	)
	it = l.budget.Bind.Iterate()
	for it.Next(&policy, &bind) {
		of(policy).bind = &bindEntry{policy: policy, ports: bind}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read network.bind ports: %w", err)
	}
	fsBy, err := l.fsRulesByPolicy()
	if err != nil {
		return nil, err
	}
	for policy, fs := range fsBy {
		of(policy).fs = fs
	}
	return by, nil
}

// removeOrphans deletes the entries no adopted jail owns: those of a
// registration or unregistration a crash interrupted (Register writes
// entries before it pins, Close removes them after it unpins). Without a
// pinned jail no program runs for them; left in place they would only
// collide with later registrations.
func (l *Loader) removeOrphans(byPolicy map[uint32]*rules) error {
	m := &l.objs.netMaps
	var errs []error
	del := func(what string, mp *ebpf.Map, key any) {
		if err := mp.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("remove orphaned %s: %w", what, err))
		}
	}
	removed := 0
	for policy, r := range byPolicy {
		if l.policies[policy] {
			continue
		}
		if err := r.remove(l.ruleMaps()); err != nil {
			errs = append(errs, fmt.Errorf("remove orphaned rules of policy %d: %w", policy, err))
		}
		removed += len(r.egress4) + len(r.egress6) + len(r.unix) + len(r.fs)
		if r.bind != nil {
			removed++
		}
	}
	for _, c := range []struct {
		what string
		m    *ebpf.Map
	}{{"jail entry", m.McpjailJails}, {"egress budget entry", l.budget.Budgets}} {
		ids, err := l.unownedCgroups(c.m)
		if err != nil {
			return err
		}
		for _, id := range ids {
			del(c.what, c.m, id)
			if c.m == m.McpjailJails {
				errs = append(errs, l.watch.purgePending(id))
			}
		}
		removed += len(ids)
	}
	if removed > 0 {
		l.logger.Warn("removed eBPF map entries of interrupted jail registrations", "entries", removed)
	}
	return errors.Join(errs...)
}

// unownedCgroups lists the keys of a map keyed by cgroup id that no adopted
// jail has.
func (l *Loader) unownedCgroups(m *ebpf.Map) ([]uint64, error) {
	var (
		id  uint64
		ids []uint64
	)
	it := m.Iterate()
	var value []byte
	for it.Next(&id, &value) {
		if l.jails[id] == nil {
			ids = append(ids, id)
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read %v: %w", m, err)
	}
	return ids, nil
}
