package confine

import (
	"fmt"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"

	"github.com/mcpjail/mcpjail/profiles"
)

// abiConfigs[v] handles every right of Landlock ABI v. Read-only.
var abiConfigs = [...]landlock.Config{{}, landlock.V1, landlock.V2, landlock.V3, landlock.V4,
	landlock.V5, landlock.V6, landlock.V7, landlock.V8, landlock.V9, landlock.V10, landlock.V11}

// Rights per profile list. Each is masked to what the kernel handles, and
// to accessFileOnly for rules on non-directories.
const (
	accessRead  landlock.AccessFSSet = ll.AccessFSReadFile | ll.AccessFSReadDir
	accessExec  landlock.AccessFSSet = accessRead | ll.AccessFSExecute
	accessWrite landlock.AccessFSSet = accessRead | ll.AccessFSWriteFile | ll.AccessFSTruncate |
		ll.AccessFSMakeReg | ll.AccessFSMakeDir | ll.AccessFSMakeSym | ll.AccessFSMakeFifo | ll.AccessFSMakeSock |
		ll.AccessFSRemoveFile | ll.AccessFSRemoveDir |
		ll.AccessFSRefer | // only write paths have it, so files move only between write paths
		ll.AccessFSIoctlDev
	// accessUnix lets the server connect to a listed pathname UNIX socket
	// whose server runs outside the jail (ABI 9).
	accessUnix landlock.AccessFSSet = ll.AccessFSResolveUnix
	// accessFileOnly is what the kernel accepts on a rule for a non-directory.
	accessFileOnly landlock.AccessFSSet = ll.AccessFSExecute | ll.AccessFSWriteFile | ll.AccessFSReadFile |
		ll.AccessFSTruncate | ll.AccessFSIoctlDev | ll.AccessFSResolveUnix
)

const (
	netTCP landlock.AccessNetSet = ll.AccessNetBindTCP | ll.AccessNetConnectTCP
	netUDP landlock.AccessNetSet = ll.AccessNetBindUDP | ll.AccessNetConnectSendUDP
)

// planLandlock fills the Landlock part of the plan for p.kernel.landlockABI.
func (p *Plan) planLandlock() error {
	abi := p.LandlockABI
	cfg := abiConfigs[abi]
	p.HandledFS, p.HandledNet, p.Scoped = cfg.HandledAccessFS, cfg.HandledAccessNet, cfg.Scoped
	p.missing = append(p.missing, landlockGaps(abi)...)
	p.Notes = append(p.Notes, landlockNotes(abi)...)

	fsPolicy := p.spec.Policy.Filesystem
	var grants []grant
	add := func(paths []string, access landlock.AccessFSSet) {
		for _, path := range paths {
			grants = append(grants, grant{path: path, access: access})
		}
	}
	add(fsPolicy.Read, accessRead)
	add(fsPolicy.Exec, accessExec)
	add(fsPolicy.Write, accessWrite)
	add(p.spec.Policy.Network.Unix, accessUnix)
	rules, skipped, err := planPathRules(grants, fsPolicy.Deny)
	if err != nil {
		return err
	}
	p.Skipped = skipped
	for _, r := range rules {
		if r.Access &= p.HandledFS; r.Access != 0 {
			p.PathRules = append(p.PathRules, r)
		}
	}
	return p.planNetwork()
}

// planNetwork picks the TCP and UDP port rules. A port rule cannot say
// "every port", so when an egress rule allows every port of a protocol,
// connecting is left unhandled by Landlock (the eBPF layer still enforces
// addresses and ports).
func (p *Plan) planNetwork() error {
	n := p.spec.Policy.Network
	if p.HandledNet&netTCP != 0 {
		var err error
		if p.BindTCP, err = expandPorts(n.Bind); err != nil {
			return fmt.Errorf("network.bind: %w", err)
		}
		all, ports, err := egressPorts(n.Egress, profiles.Protocol.CoversTCP)
		if err != nil {
			return err
		}
		if all {
			p.HandledNet &^= ll.AccessNetConnectTCP
			p.Notes = append(p.Notes, "landlock does not restrict TCP connect: an egress rule allows every TCP port (the eBPF layer enforces it)")
		} else {
			p.ConnectTCP = ports
		}
	}
	if p.HandledNet&netUDP != 0 {
		all, ports, err := egressPorts(n.Egress, profiles.Protocol.CoversUDP)
		if err != nil {
			return err
		}
		if all {
			p.HandledNet &^= ll.AccessNetConnectSendUDP
			p.Notes = append(p.Notes, "landlock does not restrict UDP send: an egress rule allows every UDP port (the eBPF layer enforces it)")
		} else {
			p.ConnectUDP = ports
		}
		// Port 0 is the kernel's implicit bind of an unbound socket to an
		// ephemeral port when it first connects or sends.
		p.BindUDP = []uint16{0}
	}
	return nil
}

// landlockRules builds go-landlock rules; paths[i] names PathRules[i].
func (p *Plan) landlockRules(paths []string) []landlock.Rule {
	var rules []landlock.Rule
	for i, r := range p.PathRules {
		rules = append(rules, landlock.PathAccess(r.Access, paths[i]))
	}
	for _, port := range p.ConnectTCP {
		rules = append(rules, landlock.ConnectTCP(port))
	}
	for _, port := range p.BindTCP {
		rules = append(rules, landlock.BindTCP(port))
	}
	for _, port := range p.ConnectUDP {
		rules = append(rules, landlock.ConnectSendUDP(port))
	}
	for _, port := range p.BindUDP {
		rules = append(rules, landlock.BindUDP(port))
	}
	return rules
}

// applyLandlock restricts every thread of the process (go-landlock uses
// TSYNC from ABI 8 on, libpsx before) and sets no_new_privs on all of them.
func (p *Plan) applyLandlock() error {
	if p.LandlockABI == 0 {
		return nil // only reachable in degraded mode: Missing says so
	}
	cfg, err := landlock.NewConfig(p.HandledFS, p.HandledNet, p.Scoped)
	if err != nil {
		return fmt.Errorf("landlock config: %w", err)
	}
	pinned, err := pinPathRules(p.PathRules)
	if err != nil {
		return err
	}
	defer pinned.release()
	if err := cfg.Restrict(p.landlockRules(pinned.paths)...); err != nil {
		return fmt.Errorf("landlock restrict (ABI %d, %d path rules): %w", p.LandlockABI, len(p.PathRules), err)
	}
	return nil
}

// landlockGaps names what the policy needs from Landlock that ABI abi lacks.
func landlockGaps(abi int) []string {
	if abi == 0 {
		return []string{"landlock (not available in this kernel: no filesystem, TCP or scope rules)"}
	}
	var gaps []string
	if abi < 3 {
		gaps = append(gaps, fmt.Sprintf("landlock truncate right (ABI 3, kernel has %d): read-only files could be truncated", abi))
	}
	if abi < 4 {
		gaps = append(gaps, fmt.Sprintf("landlock TCP rules (ABI 4, kernel has %d)", abi))
	}
	if abi < 6 {
		gaps = append(gaps, fmt.Sprintf("landlock signal and abstract UNIX socket scoping (ABI 6, kernel has %d)", abi))
	}
	return gaps
}

// landlockNotes names what ABI abi does not restrict but another layer
// covers or the profile has no words for.
func landlockNotes(abi int) []string {
	if abi == 0 {
		return nil
	}
	var notes []string
	if abi < 5 {
		notes = append(notes, fmt.Sprintf("landlock ABI %d does not restrict ioctl on device files (ABI 5)", abi))
	}
	if abi < 9 {
		notes = append(notes, fmt.Sprintf("landlock ABI %d does not restrict pathname UNIX sockets (ABI 9); the eBPF layer enforces network.unix", abi))
	}
	if abi < 10 {
		notes = append(notes, fmt.Sprintf("landlock ABI %d does not restrict UDP (ABI 10); the eBPF layer enforces it", abi))
	}
	if abi >= 4 {
		notes = append(notes, "landlock TCP rules allow ports on every address (the eBPF layer restricts addresses) and do not cover MPTCP (seccomp refuses MPTCP sockets)")
	}
	return notes
}
