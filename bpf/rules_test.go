package bpf

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/mcpjail/mcpjail/profiles"
)

func rule(cidr string, proto profiles.Protocol, ports ...[2]uint16) profiles.EgressRule {
	r := profiles.EgressRule{Prefix: netip.MustParsePrefix(cidr), Protocol: proto}
	for _, p := range ports {
		r.Ports = append(r.Ports, profiles.PortRange{Lo: p[0], Hi: p[1]})
	}
	return r
}

func port(p uint16) [2]uint16 { return [2]uint16{p, p} }

// String renders a port set as "PREFIX lo-hi/tu ..." for comparisons.
func (s portSet) String() string {
	var b strings.Builder
	b.WriteString(s.prefix.String())
	for _, r := range s.ranges {
		proto := ""
		if r.protocols&protoTCPBit != 0 {
			proto += "t"
		}
		if r.protocols&protoUDPBit != 0 {
			proto += "u"
		}
		fmt.Fprintf(&b, " %d-%d/%s", r.lo, r.hi, proto)
	}
	return b.String()
}

func TestEgressPortSets(t *testing.T) {
	tests := []struct {
		name  string
		rules []profiles.EgressRule
		want  []string
	}{
		{"no rules", nil, nil},
		{"one port", []profiles.EgressRule{rule("10.0.0.1/32", profiles.ProtoTCP, port(443))},
			[]string{"10.0.0.1/32 443-443/t"}},
		{"all ports any protocol", []profiles.EgressRule{rule("10.0.0.0/8", profiles.ProtoAny)},
			[]string{"10.0.0.0/8 0-65535/tu"}},
		{"host bits masked", []profiles.EgressRule{rule("10.1.2.3/8", profiles.ProtoUDP, port(53))},
			[]string{"10.0.0.0/8 53-53/u"}},
		{"v4-mapped becomes IPv4", []profiles.EgressRule{rule("::ffff:10.0.0.0/104", profiles.ProtoTCP, port(80))},
			[]string{"10.0.0.0/8 80-80/t"}},
		{"IPv6", []profiles.EgressRule{rule("2001:db8::/32", profiles.ProtoTCP, port(443))},
			[]string{"2001:db8::/32 443-443/t"}},
		{"overlapping and adjacent ranges merge",
			[]profiles.EgressRule{rule("10.0.0.1/32", profiles.ProtoTCP, [2]uint16{80, 90}, [2]uint16{85, 100}, port(101), port(200))},
			[]string{"10.0.0.1/32 80-101/t 200-200/t"}},
		{"same range for tcp and udp joins",
			[]profiles.EgressRule{rule("10.0.0.1/32", profiles.ProtoTCP, port(53)), rule("10.0.0.1/32", profiles.ProtoUDP, port(53))},
			[]string{"10.0.0.1/32 53-53/tu"}},
		{"a longer prefix inherits the rules that contain it",
			[]profiles.EgressRule{rule("10.0.0.0/8", profiles.ProtoTCP, port(443)), rule("10.1.0.0/16", profiles.ProtoTCP, port(80))},
			[]string{"10.0.0.0/8 443-443/t", "10.1.0.0/16 80-80/t 443-443/t"}},
		{"a shorter prefix does not inherit from a longer one",
			[]profiles.EgressRule{rule("10.1.0.0/16", profiles.ProtoTCP, port(80)), rule("10.0.0.0/8", profiles.ProtoUDP, port(53))},
			[]string{"10.1.0.0/16 53-53/u 80-80/t", "10.0.0.0/8 53-53/u"}},
		{"disjoint prefixes stay apart",
			[]profiles.EgressRule{rule("10.0.0.0/8", profiles.ProtoTCP, port(1)), rule("192.168.0.0/16", profiles.ProtoTCP, port(2))},
			[]string{"10.0.0.0/8 1-1/t", "192.168.0.0/16 2-2/t"}},
		{"families never mix",
			[]profiles.EgressRule{rule("0.0.0.0/0", profiles.ProtoTCP, port(1)), rule("::/0", profiles.ProtoTCP, port(2))},
			[]string{"0.0.0.0/0 1-1/t", "::/0 2-2/t"}},
		{"duplicate prefix appears once",
			[]profiles.EgressRule{rule("10.0.0.1/32", profiles.ProtoTCP, port(1)), rule("10.0.0.1/32", profiles.ProtoTCP, port(2))},
			[]string{"10.0.0.1/32 1-2/t"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sets, err := egressPortSets(tc.rules)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range sets {
				got = append(got, s.String())
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestEgressPortSetsRefuses(t *testing.T) {
	many := rule("10.0.0.1/32", profiles.ProtoTCP)
	for p := uint16(1); p <= 2*(MaxPortRanges+1); p += 2 {
		many.Ports = append(many.Ports, profiles.PortRange{Lo: p, Hi: p})
	}
	// Each rule alone fits; their union on the /32 does not.
	half := rule("10.0.0.0/8", profiles.ProtoUDP)
	for p := uint16(1); p <= 2*MaxPortRanges/2; p += 2 {
		half.Ports = append(half.Ports, profiles.PortRange{Lo: p, Hi: p})
	}
	otherHalf := rule("10.0.0.1/32", profiles.ProtoTCP)
	for p := uint16(101); p <= 100+2*(MaxPortRanges/2+1); p += 2 {
		otherHalf.Ports = append(otherHalf.Ports, profiles.PortRange{Lo: p, Hi: p})
	}
	tests := []struct {
		name  string
		rules []profiles.EgressRule
		want  string
	}{
		{"too many ranges", []profiles.EgressRule{many}, "at most 16"},
		{"too many after the union", []profiles.EgressRule{half, otherHalf}, "10.0.0.1/32"},
		{"reversed range", []profiles.EgressRule{rule("10.0.0.1/32", profiles.ProtoTCP, [2]uint16{9, 1})}, "reversed"},
		{"unknown protocol", []profiles.EgressRule{rule("10.0.0.1/32", "sctp")}, "unknown protocol"},
		{"invalid prefix", []profiles.EgressRule{{Protocol: profiles.ProtoTCP}}, "invalid prefix"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := egressPortSets(tc.rules); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestLongestMatchEqualsRuleList checks the property the kernel relies on:
// for any address and port, the longest matching prefix's set allows exactly
// what the rule list allows.
func TestLongestMatchEqualsRuleList(t *testing.T) {
	rules := []profiles.EgressRule{
		rule("10.0.0.0/8", profiles.ProtoTCP, port(443)),
		rule("10.1.0.0/16", profiles.ProtoTCP, port(80)),
		rule("10.1.2.0/24", profiles.ProtoUDP, [2]uint16{53, 54}),
		rule("10.1.2.3/32", profiles.ProtoAny),
		rule("192.168.0.0/16", profiles.ProtoAny, port(8080)),
	}
	sets, err := egressPortSets(rules)
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{"10.9.9.9", "10.1.9.9", "10.1.2.9", "10.1.2.3", "192.168.1.1", "11.0.0.1"}
	for _, a := range addrs {
		addr := netip.MustParseAddr(a)
		var best *portSet
		for i, s := range sets {
			if s.prefix.Contains(addr) && (best == nil || s.prefix.Bits() > best.prefix.Bits()) {
				best = &sets[i]
			}
		}
		for _, p := range []uint16{0, 53, 54, 55, 80, 443, 8080, 65535} {
			for _, bit := range []uint8{protoTCPBit, protoUDPBit} {
				want := false
				for _, r := range rules {
					pb, _ := protocolBits(r.Protocol)
					portOK := r.AllPorts()
					for _, pr := range r.Ports {
						portOK = portOK || pr.Contains(p)
					}
					want = want || (r.Prefix.Contains(addr) && pb&bit != 0 && portOK)
				}
				got := false
				if best != nil {
					for _, r := range best.ranges {
						got = got || (r.protocols&bit != 0 && p >= r.lo && p <= r.hi)
					}
				}
				if got != want {
					t.Errorf("%s port %d proto bit %d: kernel view %v, rule list %v", a, p, bit, got, want)
				}
			}
		}
	}
}

func TestCompileRules(t *testing.T) {
	n := profiles.Network{
		Egress: []profiles.EgressRule{
			rule("127.0.0.1/32", profiles.ProtoTCP, port(8080)),
			rule("::1/128", profiles.ProtoUDP, port(53)),
		},
		Unix: []string{"/run/a.sock", "/run/a.sock", "/" + strings.Repeat("x", unixPathMax-1)},
	}
	r, err := compileRules(7, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.egress4) != 1 || len(r.egress6) != 1 || len(r.unix) != 2 {
		t.Fatalf("got %d/%d/%d entries, want 1/1/2", len(r.egress4), len(r.egress6), len(r.unix))
	}
	k4 := r.egress4[0].key
	if k4.Prefixlen != 64 || k4.Policy != 7 || k4.Addr != [4]byte{127, 0, 0, 1} {
		t.Errorf("IPv4 key %+v", k4)
	}
	if v := r.egress4[0].value; v.Count != 1 || v.Ranges[0] != (netPortRange{Lo: 8080, Hi: 8080, Protocols: protoTCPBit}) {
		t.Errorf("IPv4 value %+v", v)
	}
	if k6 := r.egress6[0].key; k6.Prefixlen != 32+128 || k6.Policy != 7 || k6.Addr[15] != 1 {
		t.Errorf("IPv6 key %+v", k6)
	}
	k := r.unix[0]
	if k.Policy != 7 || cString(int8Bytes(k.Path[:])) != "/run/a.sock" || k.Path[len("/run/a.sock")] != 0 {
		t.Errorf("UNIX key %+v", k)
	}
}

func int8Bytes(s []int8) []byte {
	b := make([]byte, len(s))
	for i, c := range s {
		b[i] = byte(c)
	}
	return b
}

func TestCompileRulesRefusesUnixPaths(t *testing.T) {
	for _, p := range []string{"relative.sock", "", "/bad\x00path", "/" + strings.Repeat("x", unixPathMax)} {
		if _, err := compileRules(1, profiles.Network{Unix: []string{p}}); err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
}

// TestCompileBind: network.bind becomes one merged TCP port set per policy,
// none without bind rules, and what the kernel side cannot hold is refused.
func TestCompileBind(t *testing.T) {
	if e, err := compileBind(7, nil); e != nil || err != nil {
		t.Errorf("no bind rules: %+v, %v; want no entry", e, err)
	}
	e, err := compileBind(7, []profiles.PortRange{{Lo: 8080, Hi: 8080}, {Lo: 9000, Hi: 9010}, {Lo: 8081, Hi: 8090}, {Lo: 9005, Hi: 9020}})
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(e.policy, e.ports.Count)
	for _, r := range e.ports.Ranges[:e.ports.Count] {
		got += fmt.Sprintf(" %d-%d/%d", r.Lo, r.Hi, r.Protocols)
	}
	if want := fmt.Sprintf("7 2 8080-8090/%d 9000-9020/%d", protoTCPBit, protoTCPBit); got != want {
		t.Errorf("compiled %q, want %q", got, want)
	}
	if _, err := compileBind(7, []profiles.PortRange{{Lo: 90, Hi: 80}}); err == nil || !strings.Contains(err.Error(), "reversed") {
		t.Errorf("reversed range: %v", err)
	}
	var many []profiles.PortRange
	for p := range uint16(MaxPortRanges + 1) {
		many = append(many, profiles.PortRange{Lo: 1000 + 2*p, Hi: 1000 + 2*p})
	}
	if _, err := compileBind(7, many); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("%d separate ranges: %v, want a refusal", len(many), err)
	}
}
