package confine

import (
	"fmt"
	"math/bits"

	"github.com/mcpjail/mcpjail/profiles"
)

// portSet is a bitmap of the 65536 TCP/UDP ports: expanding any number of
// (overlapping) ranges stays bounded at 8 KiB and 65536 rules.
type portSet [65536 / 64]uint64

func (s *portSet) addRange(r profiles.PortRange) error {
	if r.Lo > r.Hi {
		return fmt.Errorf("port range %d-%d is reversed", r.Lo, r.Hi)
	}
	for p := uint32(r.Lo); p <= uint32(r.Hi); p++ {
		s[p/64] |= 1 << (p % 64)
	}
	return nil
}

// ports lists the set in ascending order. Empty words are skipped: the
// init step plans on every run, and most sets hold a few ports.
func (s *portSet) ports() []uint16 {
	var out []uint16
	for w, bitsLeft := range s {
		for bitsLeft != 0 {
			b := bits.TrailingZeros64(bitsLeft)
			out = append(out, uint16(w*64+b))
			bitsLeft &= bitsLeft - 1
		}
	}
	return out
}

func expandPorts(ranges []profiles.PortRange) ([]uint16, error) {
	var s portSet
	for _, r := range ranges {
		if err := s.addRange(r); err != nil {
			return nil, err
		}
	}
	return s.ports(), nil
}

// egressPorts collects the ports of the egress rules for whose protocol
// covers reports true. all is true when one such rule allows every port.
func egressPorts(rules []profiles.EgressRule, covers func(profiles.Protocol) bool) (all bool, ports []uint16, err error) {
	var s portSet
	for _, r := range rules {
		if !covers(r.Protocol) {
			continue
		}
		if r.AllPorts() {
			return true, nil, nil
		}
		for _, pr := range r.Ports {
			if err := s.addRange(pr); err != nil {
				return false, nil, fmt.Errorf("network.egress %s: %w", r.Prefix, err)
			}
		}
	}
	return false, s.ports(), nil
}
