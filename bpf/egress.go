package bpf

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	ebpffeatures "github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// cgroupSKBHasTaskHelpers reports whether cgroup_skb programs may call the
// current-task helpers that fill_header uses (Linux 6.1 refuses them); the
// answer is probed once per process by cilium/ebpf.
func cgroupSKBHasTaskHelpers() bool {
	for _, fn := range []asm.BuiltinFunc{asm.FnGetCurrentPidTgid, asm.FnGetCurrentComm, asm.FnGetCurrentCgroupId} {
		if ebpffeatures.HaveProgramHelper(ebpf.CGroupSKB, fn) != nil {
			return false
		}
	}
	return true
}

// MinBudgetWindow is the shortest network.egress_budget window Register
// accepts: below it the budget is a per-packet limit more than a budget, and
// a window that ends while its packets are still being counted makes the
// reset race of egress.bpf.c matter.
const MinBudgetWindow = time.Millisecond

// Values shared with egress.bpf.c.
const (
	eventEgressBudget  = 9 // enum event_kind
	reasonEgressBudget = 9 // enum event_reason
	budgetKill         = 1 << 0
	// budgetEventSize is sizeof(struct budget_event).
	budgetEventSize = headerSize + 32 + 8 + 16
)

// budgetReason is the reason text of REASON_EGRESS_BUDGET; only budget
// records carry that reason.
const budgetReason = "more bytes sent in one window than network.egress_budget allows"

// budgetObjects is egress.bpf.c: the egress-budget program and its map, and
// the accept rule's program and its map of network.bind ports. The jails
// map, events ring buffer and lost counter they use are the net object's
// maps, handed over as replacements so that one set serves every program.
type budgetObjects struct {
	Program *ebpf.Program `ebpf:"mcpjail_egress"`
	Budgets *ebpf.Map     `ebpf:"mcpjail_budget"`
	Accept  *ebpf.Program `ebpf:"mcpjail_accept"`
	Bind    *ebpf.Map     `ebpf:"mcpjail_bind"`
}

// load loads the program and its budget map; shared supplies the maps of
// common.h the program writes to, kernelBTF the loader's parsed kernel BTF.
func (o *budgetObjects) load(shared *netMaps, kernelBTF *btf.Cache) error {
	spec, err := loadEgress()
	if err != nil {
		return fmt.Errorf("egress budget program: %w", err)
	}
	if !cgroupSKBHasTaskHelpers() {
		if err := spec.Variables[egressVarTaskHelpers].Set(uint8(0)); err != nil {
			return fmt.Errorf("egress budget program: %w", err)
		}
	}
	opts := &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{
		egressMapMcpjailEvents: shared.McpjailEvents,
		egressMapMcpjailLost:   shared.McpjailLost,
		egressMapMcpjailJails:  shared.McpjailJails,
	}, Cache: kernelBTF}
	if err := spec.LoadAndAssign(o, opts); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("egress budget program: %+v", ve)
		}
		return fmt.Errorf("egress budget program: %w", err)
	}
	return nil
}

// Close unloads them all; any may be nil (never loaded), which Close allows.
func (o *budgetObjects) Close() error {
	return errors.Join(o.Program.Close(), o.Budgets.Close(), o.Accept.Close(), o.Bind.Close())
}

// newBudgetState is compileBudget for p, with the window starting now.
func newBudgetState(p *profiles.Policy) (*egressBudgetState, error) {
	if p.Network.EgressBudget == nil {
		return nil, nil
	}
	now, err := monotonicNow()
	if err != nil {
		return nil, err
	}
	return compileBudget(p.Network.EgressBudget, p.OnViolation.Network, now)
}

// compileBudget checks a policy's egress budget and returns the kernel's
// initial state for it, or nil when the policy has no budget. The window
// starts at now, a CLOCK_MONOTONIC reading (bpf_ktime_get_ns's clock).
func compileBudget(b *profiles.Budget, onNetwork profiles.Action, now time.Duration) (*egressBudgetState, error) {
	if b == nil {
		return nil, nil
	}
	if b.Bytes == 0 {
		return nil, errors.New("network.egress_budget: bytes must be more than 0")
	}
	if b.Per < MinBudgetWindow {
		return nil, fmt.Errorf("network.egress_budget: per is %s, shorter than the %s minimum", b.Per, MinBudgetWindow)
	}
	s := &egressBudgetState{Budget: b.Bytes, WindowNs: uint64(b.Per), WindowStart: uint64(now)}
	if onNetwork == profiles.ActionKill {
		s.Flags |= budgetKill
	}
	return s, nil
}

// monotonicNow reads the clock the kernel side measures windows with.
func monotonicNow() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("read CLOCK_MONOTONIC: %w", err)
	}
	return time.Duration(ts.Nano()), nil
}

// applyBudget writes the jail's budget state, then attaches the egress
// program to its cgroup, so the program never runs without the state. The
// link joins j.links: release detaches it before removing the state.
func (j *Jail) applyBudget(cgroupPath string) error {
	if j.budget == nil {
		return nil
	}
	o := &j.loader.budget
	if err := o.Budgets.Update(j.cgroupID, j.budget, ebpf.UpdateNoExist); err != nil {
		return fmt.Errorf("add egress budget entry: %w", err)
	}
	lk, err := link.AttachCgroup(link.CgroupOptions{Path: cgroupPath, Attach: ebpf.AttachCGroupInetEgress, Program: o.Program})
	if err != nil {
		return fmt.Errorf("attach %s: %w", ebpf.AttachCGroupInetEgress, err)
	}
	j.links = append(j.links, lk)
	j.linkNames = append(j.linkNames, budgetAttachment)
	return nil
}

// removeBudget deletes the jail's budget state; one never written is not an
// error. Called after the links are closed.
func (j *Jail) removeBudget() error {
	if j.budget == nil {
		return nil
	}
	err := j.loader.budget.Budgets.Delete(j.cgroupID)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("remove egress budget entry: %w", err)
	}
	return nil
}

// EgressUsage is a jail's egress budget as the kernel sees it now.
type EgressUsage struct {
	Budget uint64        // bytes per window
	Window time.Duration // window length
	// Bytes is what was counted in the current window, dropped packets
	// included (except those dropped after a kill latch); it may belong to
	// a window that has ended if nothing was sent since.
	Bytes uint64
	// Exceeded is the latch: the budget was exceeded (in this window, or at
	// all when on_violation.network is kill).
	Exceeded       bool
	DroppedPackets uint64 // since Register
	DroppedBytes   uint64
}

// EgressUsage reads the jail's budget counters. It is an error when the
// jail's policy has no egress budget.
func (j *Jail) EgressUsage() (EgressUsage, error) {
	if j.budget == nil {
		return EgressUsage{}, fmt.Errorf("egress usage of jail (cgroup id %d): the policy has no egress budget", j.cgroupID)
	}
	var s egressBudgetState
	if err := j.loader.budget.Budgets.Lookup(j.cgroupID, &s); err != nil {
		return EgressUsage{}, fmt.Errorf("egress usage of jail (cgroup id %d): %w", j.cgroupID, err)
	}
	return EgressUsage{Budget: s.Budget, Window: time.Duration(s.WindowNs), Bytes: s.Bytes,
		Exceeded: s.Exceeded != 0, DroppedPackets: s.DroppedPackets, DroppedBytes: s.DroppedBytes}, nil
}

// decodeBudget fills e from a budget_event body (b starts after the header).
// The kernel sets BUDGET_KILL when on_violation.network is kill: the event
// then carries ActionKill, and the caller kills the jail's whole cgroup.
func decodeBudget(e *Event, reason uint8, b []byte) error {
	if len(b) < budgetEventSize-headerSize {
		return fmt.Errorf("decode event: egress budget record body of %d bytes, want %d", len(b), budgetEventSize-headerSize)
	}
	budget := native.Uint64(b[0:])
	window := time.Duration(native.Uint64(b[8:]))
	bytes := native.Uint64(b[16:])
	packetLen := native.Uint32(b[24:])
	flags := native.Uint32(b[28:])
	family, port, protocol := native.Uint16(b[32:]), native.Uint16(b[34:]), native.Uint16(b[36:])
	addr := b[40:56]

	e.Kind = audit.KindEgressBudget
	e.Action = audit.ActionNone
	if flags&budgetKill != 0 {
		e.Action = audit.ActionKill
	}
	dest := destination(family, addr, port, protocol)
	if reason != reasonEgressBudget {
		// No budget state for the socket's cgroup (fail closed): nothing was counted.
		e.Target, e.Reason = dest, reasonText(reason)
		return nil
	}
	e.Target = strconv.FormatUint(budget, 10) + " bytes in " + window.String()
	e.Reason = fmt.Sprintf("%s: %d bytes counted in the window with a %d-byte packet", budgetReason, bytes, packetLen)
	if dest != "" {
		e.Reason += " to " + dest
	}
	if e.Action == audit.ActionKill {
		e.Reason += "; every later packet is dropped"
	} else {
		e.Reason += "; later packets of the window are dropped"
	}
	return nil
}

// destination renders the packet's destination as its IP header gave it, or
// "" when the packet was not IP.
func destination(family uint16, addr []byte, port, protocol uint16) string {
	var s string
	switch family {
	case afInet:
		s = netip.AddrPortFrom(netip.AddrFrom4([4]byte(addr[:4])), port).String()
	case afInet6:
		s = netip.AddrPortFrom(netip.AddrFrom16([16]byte(addr[:16])), port).String()
	default:
		return ""
	}
	if protocol != 0 {
		s += "/" + ipProtoName(protocol)
	}
	return s
}
