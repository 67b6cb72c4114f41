package bpf

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/mcpjail/mcpjail/profiles"
)

// rules is one policy's entries for the rule maps.
type rules struct {
	egress4 []egress4Entry
	egress6 []egress6Entry
	unix    []netUnixKey
	fs      []fsRule   // BPF-LSM filesystem rules (lsm_rules.go); none where the layer is off
	bind    *bindEntry // network.bind's TCP ports (egress.bpf.c's accept rule); nil when none
}

// bindEntry is a policy's entry in the bind map.
type bindEntry struct {
	policy uint32
	ports  egressPortSet
}

type egress4Entry struct {
	key   netEgress4Key
	value netPortSet
}

type egress6Entry struct {
	key   netEgress6Key
	value netPortSet
}

// portRange is one range with the protocols it is allowed for.
type portRange struct {
	lo, hi    uint16
	protocols uint8
}

// compileRules turns a policy's network section into map entries keyed by
// policyID. It refuses what the kernel side cannot express exactly.
func compileRules(policyID uint32, n profiles.Network) (*rules, error) {
	var r rules
	sets, err := egressPortSets(n.Egress)
	if err != nil {
		return nil, err
	}
	for _, s := range sets {
		var ps netPortSet
		ps.Count = uint32(len(s.ranges))
		for i, pr := range s.ranges {
			ps.Ranges[i] = netPortRange{Lo: pr.lo, Hi: pr.hi, Protocols: pr.protocols}
		}
		bits := uint32(s.prefix.Bits())
		if s.prefix.Addr().Is4() {
			k := netEgress4Key{Prefixlen: 32 + bits, Policy: policyID, Addr: s.prefix.Addr().As4()}
			r.egress4 = append(r.egress4, egress4Entry{k, ps})
		} else {
			k := netEgress6Key{Prefixlen: 32 + bits, Policy: policyID, Addr: s.prefix.Addr().As16()}
			r.egress6 = append(r.egress6, egress6Entry{k, ps})
		}
	}
	if r.bind, err = compileBind(policyID, n.Bind); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, p := range n.Unix {
		if err := checkUnixPath(p); err != nil {
			return nil, err
		}
		if seen[p] {
			continue
		}
		seen[p] = true
		k := netUnixKey{Policy: policyID}
		for i := range len(p) {
			k.Path[i] = int8(p[i])
		}
		r.unix = append(r.unix, k)
	}
	return &r, nil
}

// compileBind turns network.bind into the TCP port set of the accept rule,
// or nil when the policy binds nothing.
func compileBind(policyID uint32, bind []profiles.PortRange) (*bindEntry, error) {
	if len(bind) == 0 {
		return nil, nil
	}
	var ranges []portRange
	for _, pr := range bind {
		if pr.Lo > pr.Hi {
			return nil, fmt.Errorf("network.bind: port range %d-%d is reversed", pr.Lo, pr.Hi)
		}
		ranges = append(ranges, portRange{pr.Lo, pr.Hi, protoTCPBit})
	}
	merged := mergeRanges(ranges)
	if len(merged) > MaxPortRanges {
		return nil, fmt.Errorf("network.bind: %d separate port ranges; at most %d are supported (merge ports into ranges)", len(merged), MaxPortRanges)
	}
	e := &bindEntry{policy: policyID}
	e.ports.Count = uint32(len(merged))
	for i, pr := range merged {
		e.ports.Ranges[i].Lo, e.ports.Ranges[i].Hi, e.ports.Ranges[i].Protocols = pr.lo, pr.hi, pr.protocols
	}
	return e, nil
}

// checkUnixPath accepts what the kernel compares: an absolute path of at most
// sizeof(sun_path) bytes without NUL.
func checkUnixPath(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("network.unix: %q is not an absolute path", p)
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("network.unix: %q contains a NUL byte", p)
	case len(p) > unixPathMax:
		return fmt.Errorf("network.unix: %q is %d bytes; a UNIX socket path has at most %d", p, len(p), unixPathMax)
	}
	return nil
}

// portSet is the entry of one prefix in an egress trie.
type portSet struct {
	prefix netip.Prefix
	ranges []portRange
}

// egressPortSets gives each distinct prefix the union of the port ranges of
// every rule whose prefix contains it. The kernel's LPM lookup returns only
// the longest matching prefix, and every rule matching an address contains
// that prefix, so the union makes the longest match decide exactly as the
// whole rule list would.
func egressPortSets(egress []profiles.EgressRule) ([]portSet, error) {
	type rule struct {
		prefix netip.Prefix
		ranges []portRange
	}
	var all []rule
	for _, e := range egress {
		p, err := normalizePrefix(e.Prefix)
		if err != nil {
			return nil, err
		}
		bits, err := protocolBits(e.Protocol)
		if err != nil {
			return nil, fmt.Errorf("network.egress %s: %w", p, err)
		}
		var ranges []portRange
		if e.AllPorts() {
			ranges = []portRange{{0, 65535, bits}}
		}
		for _, pr := range e.Ports {
			if pr.Lo > pr.Hi {
				return nil, fmt.Errorf("network.egress %s: port range %d-%d is reversed", p, pr.Lo, pr.Hi)
			}
			ranges = append(ranges, portRange{pr.Lo, pr.Hi, bits})
		}
		all = append(all, rule{p, ranges})
	}

	var sets []portSet
	done := map[netip.Prefix]bool{}
	for _, r := range all {
		if done[r.prefix] {
			continue
		}
		done[r.prefix] = true
		var union []portRange
		for _, o := range all {
			if o.prefix.Bits() <= r.prefix.Bits() && o.prefix.Contains(r.prefix.Addr()) {
				union = append(union, o.ranges...)
			}
		}
		merged := mergeRanges(union)
		if len(merged) > MaxPortRanges {
			return nil, fmt.Errorf("network.egress %s: the rules covering it allow %d separate port ranges; at most %d are supported (merge ports into ranges)",
				r.prefix, len(merged), MaxPortRanges)
		}
		sets = append(sets, portSet{r.prefix, merged})
	}
	return sets, nil
}

// normalizePrefix masks the prefix and turns an IPv4-mapped one into IPv4,
// which is where the kernel side looks up ::ffff:a.b.c.d.
func normalizePrefix(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("network.egress: invalid prefix %v", p)
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("network.egress %s: zones are not supported", p)
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

func protocolBits(p profiles.Protocol) (uint8, error) {
	switch p {
	case profiles.ProtoTCP:
		return protoTCPBit, nil
	case profiles.ProtoUDP:
		return protoUDPBit, nil
	case profiles.ProtoAny, "":
		return protoTCPBit | protoUDPBit, nil
	}
	return 0, fmt.Errorf("unknown protocol %q", p)
}

// mergeRanges merges overlapping and adjacent ranges per protocol, then joins
// a TCP and a UDP range that are identical into one entry. The result is
// sorted and allows exactly what the input allows.
func mergeRanges(in []portRange) []portRange {
	var out []portRange
	for _, bit := range []uint8{protoTCPBit, protoUDPBit} {
		var rs []portRange
		for _, r := range in {
			if r.protocols&bit != 0 {
				rs = append(rs, portRange{r.lo, r.hi, bit})
			}
		}
		slices.SortFunc(rs, func(a, b portRange) int { return cmp.Compare(a.lo, b.lo) })
		var merged []portRange
		for _, r := range rs {
			if n := len(merged); n > 0 && uint32(r.lo) <= uint32(merged[n-1].hi)+1 {
				merged[n-1].hi = max(merged[n-1].hi, r.hi)
				continue
			}
			merged = append(merged, r)
		}
		out = append(out, merged...)
	}
	// Join identical TCP and UDP ranges.
	var joined []portRange
	for _, r := range out {
		i := slices.IndexFunc(joined, func(j portRange) bool { return j.lo == r.lo && j.hi == r.hi })
		if i >= 0 {
			joined[i].protocols |= r.protocols
			continue
		}
		joined = append(joined, r)
	}
	slices.SortFunc(joined, func(a, b portRange) int {
		return cmp.Or(cmp.Compare(a.lo, b.lo), cmp.Compare(a.hi, b.hi), cmp.Compare(a.protocols, b.protocols))
	})
	return joined
}
