package bpf

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"github.com/mcpjail/mcpjail/profiles"
)

// lsmLayer is the BPF-LSM deny layer (lsm.bpf.c): three programs attached
// once for the whole host (LSM hooks are global; each returns at once for a
// task outside the jails) and the filesystem rule map, which exists even
// where the programs do not load, so that the pinned set has one layout.
type lsmLayer struct {
	objs  lsmObjectsLoaded
	links []link.Link
	// err says why the programs are not in use; nil when they are.
	err error
}

// lsmObjectsLoaded asks bpf2go's loader for programs and maps only (see
// kernelObjects).
type lsmObjectsLoaded struct {
	lsmPrograms
	lsmMaps
}

// errLSMNotPinned is the layer's state in a pinned set whose loader found no
// BPF LSM.
var errLSMNotPinned = errors.New("not loaded by the kernel when the pinned programs were loaded")

// loadLSM creates the layer's map against the loader's shared maps, then
// tries its programs: where the kernel refuses to load or attach them (no
// lsm=bpf, or lockdown), the layer is off and err says why; only a failure to
// create the map is an error. On error nothing of it remains.
func loadLSM(shared *netMaps, kernelBTF *btf.Cache, logger *slog.Logger) (*lsmLayer, error) {
	spec, err := loadLsm()
	if err != nil {
		return nil, fmt.Errorf("load BPF-LSM object: %w", err)
	}
	replace := map[string]*ebpf.Map{
		"mcpjail_jails":   shared.McpjailJails,
		"mcpjail_events":  shared.McpjailEvents,
		"mcpjail_lost":    shared.McpjailLost,
		"mcpjail_egress4": shared.McpjailEgress4,
		"mcpjail_egress6": shared.McpjailEgress6,
	}
	l := &lsmLayer{}
	if err := spec.LoadAndAssign(&l.objs.lsmMaps, &ebpf.CollectionOptions{MapReplacements: replace}); err != nil {
		return nil, fmt.Errorf("create BPF-LSM maps: %w", err)
	}
	replace["mcpjail_fsrules"] = l.objs.McpjailFsrules
	opts := &ebpf.CollectionOptions{MapReplacements: replace, Cache: kernelBTF}
	if err := spec.LoadAndAssign(&l.objs.lsmPrograms, opts); err != nil {
		l.err = fmt.Errorf("load: %w", verifierDetail(err))
		logger.Debug("BPF-LSM layer unavailable", "err", l.err)
		return l, nil
	}
	for _, p := range l.programs() {
		lk, err := link.AttachLSM(link.LSMOptions{Program: p})
		if err != nil {
			l.err = fmt.Errorf("attach %v: %w", p, err)
			logger.Debug("BPF-LSM layer unavailable", "err", l.err)
			closeErr := errors.Join(closeLinks("BPF-LSM program", l.links), l.objs.lsmPrograms.Close())
			l.links, l.objs.lsmPrograms = nil, lsmPrograms{}
			if closeErr != nil {
				return nil, errors.Join(fmt.Errorf("detach BPF-LSM programs: %w", closeErr), l.objs.lsmMaps.Close())
			}
			return l, nil
		}
		l.links = append(l.links, lk)
	}
	return l, nil
}

func (l *lsmLayer) programs() []*ebpf.Program {
	p := &l.objs.lsmPrograms
	return []*ebpf.Program{p.McpjailLsmExec, p.McpjailLsmOpen, p.McpjailLsmConn}
}

// close detaches, then unloads. Safe on a nil or partly loaded layer.
func (l *lsmLayer) close() error {
	errs := []error{closeLinks("BPF-LSM program", l.links)}
	l.links = nil
	errs = append(errs, l.objs.lsmPrograms.Close(), l.objs.lsmMaps.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("unload BPF-LSM layer: %w", err)
	}
	return nil
}

// LSM says whether the BPF-LSM deny layer enforces in this loader's jails:
// nil when it does, else why not (the kernel does not run BPF LSM programs).
// Its absence is not in Missing: the layer is optional unless a profile
// requires it (profiles.LayerBPFLSM), which Register then refuses.
func (l *Loader) LSM() error {
	switch {
	case l.lsm.err != nil:
		return fmt.Errorf("BPF-LSM layer unavailable: %w", l.lsm.err)
	case l.lsm.objs.McpjailLsmOpen == nil:
		return errors.New("BPF-LSM layer unavailable: not loaded")
	}
	return nil
}

// checkRequired refuses a policy that requires a layer this loader lacks.
func (l *Loader) checkRequired(p *profiles.Policy) error {
	if p.Requires(profiles.LayerBPFLSM) {
		if err := l.LSM(); err != nil {
			return fmt.Errorf("the profile requires the %s layer: %w", profiles.LayerBPFLSM, err)
		}
	}
	return nil
}

// compileJailFSRules compiles p's filesystem rules for the BPF-LSM layer;
// none where the layer is off, so that nothing changes there.
func (l *Loader) compileJailFSRules(policyID uint32, p *profiles.Policy) ([]fsRule, error) {
	if l.LSM() != nil {
		return nil, nil
	}
	identify, err := hostIdentifier()
	if err != nil {
		return nil, err
	}
	r, skipped, err := compileFSRules(policyID, p.Filesystem, identify)
	if err != nil {
		return nil, fmt.Errorf("BPF-LSM rules: %w", err)
	}
	if len(skipped) > 0 {
		l.logger.Info("profile paths that do not exist get no BPF-LSM rule", "paths", skipped)
	}
	return r, nil
}

// fsRulesByPolicy reads the pinned filesystem rules, by policy id.
func (l *Loader) fsRulesByPolicy() (map[uint32][]fsRule, error) {
	by := map[uint32][]fsRule{}
	var (
		k lsmFsKey
		v uint8
	)
	it := l.lsm.objs.McpjailFsrules.Iterate()
	for it.Next(&k, &v) {
		by[k.Policy] = append(by[k.Policy], fsRule{key: k, value: v})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read BPF-LSM filesystem rules: %w", err)
	}
	return by, nil
}

// globalLinks are the links attached once per loader: the watching
// tracepoints and the LSM hooks. LoadPinned pins them in this order; an
// adopted loader holds them all in watch.links.
func (l *Loader) globalLinks() []link.Link {
	return append(append([]link.Link{}, l.watch.links...), l.lsm.links...)
}
