package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// adopt opens a pinned set (LoadPinned) after checking its stamp, then its
// jails. On error the caller closes what was opened; nothing is detached.
func (l *Loader) adopt() error {
	s, err := readStamp(l.pin.sub(stampPin))
	if err != nil {
		return err
	}
	if want := buildHash(); s.build != want || s.layout != pinLayout {
		return fmt.Errorf("the set was pinned by another mcpjail build (objects %x, layout %d; this build %x, layout %d); %s",
			s.build[:8], s.layout, want[:8], pinLayout, cleanupHint)
	}
	l.watch = &watcher{}
	if s.flags&stampUnixMissing != 0 {
		l.unixErr = errors.New("not loaded by the kernel when the pinned programs were loaded")
	}
	progs, mps, err := objectFields(l.objectRoots())
	if err != nil {
		return err
	}
	// Programs this kernel did not load were not pinned.
	var unixNames, lsmNames map[string][]reflect.Value
	if l.unixErr != nil {
		if unixNames, _, err = objectFields([]any{&unixPrograms{}}); err != nil {
			return err
		}
	}
	if s.flags&stampLSMMissing != 0 {
		l.lsm.err = errLSMNotPinned
		if lsmNames, _, err = objectFields([]any{&lsmPrograms{}}); err != nil {
			return err
		}
	}
	for name, fields := range mps {
		m, err := ebpf.LoadPinnedMap(l.pin.sub(mapsDir, name), nil)
		if err != nil {
			return incomplete("map "+name, err)
		}
		if err := assignShared(fields, m, m.Clone); err != nil {
			return err
		}
	}
	for name, fields := range progs {
		if unixNames[name] != nil || lsmNames[name] != nil {
			continue
		}
		p, err := ebpf.LoadPinnedProgram(l.pin.sub(progsDir, name), nil)
		if err != nil {
			return incomplete("program "+name, err)
		}
		if err := assignShared(fields, p, p.Clone); err != nil {
			return err
		}
	}
	if err := l.adoptGlobalLinks(int(s.globalLinks)); err != nil {
		return err
	}
	return l.adoptJails()
}

// incomplete words a missing pin of the global set.
func incomplete(what string, err error) error {
	return fmt.Errorf("the set is incomplete: %s: %w; %s", what, err, cleanupHint)
}

// assignShared sets the first field to obj and every other (an object
// shared between structs) to a clone, each with its own descriptor.
func assignShared[T interface{ Close() error }](fields []reflect.Value, obj T, clone func() (T, error)) error {
	fields[0].Set(reflect.ValueOf(obj))
	for _, f := range fields[1:] {
		c, err := clone()
		if err != nil {
			return fmt.Errorf("duplicate descriptor: %w", err)
		}
		f.Set(reflect.ValueOf(c))
	}
	return nil
}

// adoptGlobalLinks opens the pinned tracepoint links; there must be exactly n.
func (l *Loader) adoptGlobalLinks(n int) error {
	ents, err := os.ReadDir(l.pin.sub(linksDir))
	if err != nil {
		return incomplete("links", err)
	}
	if len(ents) != n {
		return incomplete("links", fmt.Errorf("%d pinned, the stamp says %d", len(ents), n))
	}
	for i := range n {
		lk, err := link.LoadPinnedLink(l.pin.sub(linksDir, globalLinkName(i)), nil)
		if err != nil {
			return incomplete("link "+globalLinkName(i), err)
		}
		l.watch.links = append(l.watch.links, lk)
	}
	return nil
}

// adoptJails makes a Jail of every complete jail directory, after removing
// what interrupted registrations and unregistrations left (a -new or
// -closing directory, map entries no complete jail owns).
func (l *Loader) adoptJails() error {
	dir := l.pin.sub(jailsDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return incomplete("jails", err)
	}
	var complete []uint64
	for _, e := range ents {
		idText, suffix, _ := strings.Cut(e.Name(), "-")
		id, err := strconv.ParseUint(idText, 10, 64)
		if err != nil || !e.IsDir() || id == 0 {
			return fmt.Errorf("unexpected %s in %s; %s", e.Name(), dir, cleanupHint)
		}
		switch "-" + suffix {
		case "-":
			complete = append(complete, id)
		case pendingSuffix, closingSuffix:
			l.logger.Warn("removing a jail whose registration or unregistration was interrupted", "cgroup_id", id, "pins", e.Name())
			if err := l.removeInterrupted(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("remove interrupted jail %s: %w", e.Name(), err)
			}
		default:
			return fmt.Errorf("unexpected %s in %s; %s", e.Name(), dir, cleanupHint)
		}
	}
	byPolicy, err := l.rulesByPolicy()
	if err != nil {
		return err
	}
	for _, id := range complete {
		j, err := l.adoptJail(id, l.pin.jailPath(id), byPolicy)
		if err != nil {
			return fmt.Errorf("adopt jail (cgroup id %d): %w; %s", id, err, cleanupHint)
		}
		l.jails[id] = j
		l.policies[j.policyID] = true
		l.nextPolicy = max(l.nextPolicy, j.policyID+1)
	}
	if l.nextPolicy == 0 {
		l.nextPolicy = 1
	}
	return l.removeOrphans(byPolicy)
}

// adoptJail opens one complete jail's links and finds its entries. Every
// link its attachments call for must be pinned, nothing else, and each must
// be the expected program on the jail's cgroup.
func (l *Loader) adoptJail(id uint64, dir string, byPolicy map[uint32]*rules) (_ *Jail, err error) {
	var entry netJail
	if err := l.objs.McpjailJails.Lookup(id, &entry); err != nil {
		return nil, fmt.Errorf("its jails-map entry: %w", err)
	}
	if l.policies[entry.Policy] || entry.Policy == 0 {
		return nil, fmt.Errorf("policy id %d is not the jail's own", entry.Policy)
	}
	j := &Jail{loader: l, cgroupID: id, policyID: entry.Policy, rules: byPolicy[entry.Policy], pinPath: dir, adopted: true}
	if j.rules == nil {
		j.rules = &rules{} // a policy may allow nothing
	}
	var st egressBudgetState
	switch err := l.budget.Budgets.Lookup(id, &st); {
	case err == nil:
		j.budget = &st
	case !errors.Is(err, ebpf.ErrKeyNotExist):
		return nil, fmt.Errorf("its egress budget entry: %w", err)
	}
	want := l.jailAttachments()
	if j.budget != nil {
		want = append(want, attachment{budgetAttachment, l.budget.Program, ebpf.AttachCGroupInetEgress})
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	var wantNames []string
	for _, a := range want {
		wantNames = append(wantNames, a.name)
	}
	slices.Sort(wantNames)
	if !slices.Equal(names, wantNames) { // ReadDir sorts by name
		return nil, fmt.Errorf("pinned links %v, want %v", names, wantNames)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, j.closeDescriptors())
		}
	}()
	for _, a := range want {
		lk, err := link.LoadPinnedLink(filepath.Join(dir, a.name), nil)
		if err != nil {
			return nil, fmt.Errorf("%s link: %w", a.name, err)
		}
		j.links = append(j.links, lk)
		j.linkNames = append(j.linkNames, a.name)
		if err := checkJailLink(lk, a, id); err != nil {
			return nil, fmt.Errorf("%s link: %w", a.name, err)
		}
	}
	j.route = l.addRoute(id, false)
	return j, nil
}

// checkJailLink makes sure a pinned link is a's program, attached as a on
// the jail's cgroup. A cgroup that was removed while the link was pinned
// reads as id 0 (the kernel detached the link): the jail is adopted all the
// same, for its owner to close.
func checkJailLink(lk link.Link, a attachment, cgroupID uint64) error {
	info, err := lk.Info()
	if err != nil {
		return err
	}
	pinfo, err := a.prog.Info()
	if err != nil {
		return err
	}
	progID, _ := pinfo.ID()
	cg := info.Cgroup()
	switch {
	case info.Type != link.CgroupType || cg == nil:
		return fmt.Errorf("link type %d, not a cgroup link", info.Type)
	case info.Program != progID:
		return fmt.Errorf("runs program %d, not %s (%d)", info.Program, a.name, progID)
	case uint32(cg.AttachType) != uint32(a.at):
		return fmt.Errorf("attach type %d, want %s", cg.AttachType, a.at)
	case cg.CgroupId != cgroupID && cg.CgroupId != 0:
		return fmt.Errorf("attached to cgroup %d", cg.CgroupId)
	}
	return nil
}

// removeInterrupted detaches the links left in an interrupted jail
// directory and removes it. Its map entries go with removeOrphans.
func (l *Loader) removeInterrupted(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		// Holding the link while unpinning makes the close the last
		// reference: the detach is done when it returns.
		lk, lerr := link.LoadPinnedLink(p, nil)
		if err := os.Remove(p); err != nil {
			errs = append(errs, err)
		}
		if lerr == nil {
			errs = append(errs, lk.Close())
		}
	}
	if err := os.Remove(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
