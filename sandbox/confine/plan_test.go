package confine

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"

	"github.com/mcpjail/mcpjail/profiles"
)

func fakeKernel(abi int) kernelFacts {
	return kernelFacts{landlockABI: abi, seccomp: true, seccompListener: true, lastCap: 40, canSetPCap: true, canSetIDs: true}
}

func loopback(ports ...profiles.PortRange) profiles.EgressRule {
	return profiles.EgressRule{Prefix: netip.MustParsePrefix("127.0.0.1/32"), Ports: ports, Protocol: profiles.ProtoTCP}
}

func port(p uint16) profiles.PortRange { return profiles.PortRange{Lo: p, Hi: p} }

func testPolicy(t *testing.T) profiles.Policy {
	root := testTree(t)
	return profiles.Policy{
		Filesystem: profiles.Filesystem{
			Read:  []string{root},
			Write: []string{root + "/other"},
			Deny:  []string{root + "/home/.ssh"},
		},
		Network: profiles.Network{
			Egress: []profiles.EgressRule{loopback(port(443), profiles.PortRange{Lo: 8000, Hi: 8002})},
			Bind:   []profiles.PortRange{port(9000)},
		},
	}
}

func hasEntry(list []string, substr string) bool {
	return slices.ContainsFunc(list, func(s string) bool { return strings.Contains(s, substr) })
}

func TestPlanMissingPerABI(t *testing.T) {
	tests := []struct {
		abi         int
		wantMissing []string
	}{
		{0, []string{"landlock (not available"}},
		{2, []string{"truncate right (ABI 3, kernel has 2)", "TCP rules (ABI 4, kernel has 2)", "scoping (ABI 6, kernel has 2)"}},
		{4, []string{"scoping (ABI 6, kernel has 4)"}},
		{6, nil},
		{7, nil},
		{11, nil},
	}
	for _, tt := range tests {
		p, err := buildPlan(Spec{Policy: testPolicy(t)}, fakeKernel(tt.abi))
		if err != nil {
			t.Fatalf("ABI %d: %v", tt.abi, err)
		}
		missing := p.Missing()
		if len(missing) != len(tt.wantMissing) {
			t.Errorf("ABI %d: Missing() = %q, want %d entries like %q", tt.abi, missing, len(tt.wantMissing), tt.wantMissing)
			continue
		}
		for _, want := range tt.wantMissing {
			if !hasEntry(missing, want) {
				t.Errorf("ABI %d: Missing() = %q, want an entry with %q", tt.abi, missing, want)
			}
		}
	}
}

func TestPlanRightsFollowABI(t *testing.T) {
	policy := testPolicy(t)
	writeDir := policy.Filesystem.Write[0]
	rightsOf := func(p *Plan, path string) landlock.AccessFSSet {
		for _, r := range p.PathRules {
			if r.Path == path {
				return r.Access
			}
		}
		t.Fatalf("no rule for %s in %v", path, p.PathRules)
		return 0
	}
	tests := []struct {
		abi     int
		want    landlock.AccessFSSet
		notWant landlock.AccessFSSet
	}{
		{1, ll.AccessFSWriteFile, ll.AccessFSRefer | ll.AccessFSTruncate | ll.AccessFSIoctlDev},
		{2, ll.AccessFSRefer, ll.AccessFSTruncate},
		{3, ll.AccessFSRefer | ll.AccessFSTruncate, ll.AccessFSIoctlDev},
		{5, ll.AccessFSIoctlDev | ll.AccessFSTruncate, 0},
		{7, accessWrite, ll.AccessFSExecute | ll.AccessFSMakeChar | ll.AccessFSMakeBlock},
	}
	for _, tt := range tests {
		p, err := buildPlan(Spec{Policy: policy}, fakeKernel(tt.abi))
		if err != nil {
			t.Fatalf("ABI %d: %v", tt.abi, err)
		}
		if p.HandledFS != abiConfigs[tt.abi].HandledAccessFS {
			t.Errorf("ABI %d: handled %v, want every right of the ABI", tt.abi, p.HandledFS)
		}
		got := rightsOf(p, writeDir)
		if got&tt.want != tt.want || got&tt.notWant != 0 {
			t.Errorf("ABI %d: write rights %v, want %v and none of %v", tt.abi, got, tt.want, tt.notWant)
		}
	}
}

func TestPlanNetwork(t *testing.T) {
	base := testPolicy(t)
	tests := []struct {
		name          string
		abi           int
		egress        []profiles.EgressRule
		wantConnect   []uint16
		wantHandleTCP bool
		wantUDP       []uint16
	}{
		{"listed ports", 7, base.Network.Egress, []uint16{443, 8000, 8001, 8002}, true, nil},
		{"no egress denies every connect", 7, nil, nil, true, nil},
		{"all TCP ports leave connect unhandled", 7, []profiles.EgressRule{loopback()}, nil, false, nil},
		{"UDP rules do not open TCP", 7, []profiles.EgressRule{{Prefix: netip.MustParsePrefix("127.0.0.53/32"), Ports: []profiles.PortRange{port(53)}, Protocol: profiles.ProtoUDP}}, nil, true, nil},
		{"ABI 10 adds UDP rules", 10, []profiles.EgressRule{{Prefix: netip.MustParsePrefix("127.0.0.53/32"), Ports: []profiles.PortRange{port(53)}, Protocol: profiles.ProtoAny}}, []uint16{53}, true, []uint16{53}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			policy := base
			policy.Network.Egress = tt.egress
			p, err := buildPlan(Spec{Policy: policy}, fakeKernel(tt.abi))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.ConnectTCP, tt.wantConnect) {
				t.Errorf("ConnectTCP = %v, want %v", p.ConnectTCP, tt.wantConnect)
			}
			if got := p.HandledNet&ll.AccessNetConnectTCP != 0; got != tt.wantHandleTCP {
				t.Errorf("connect_tcp handled = %v, want %v", got, tt.wantHandleTCP)
			}
			if !tt.wantHandleTCP && !hasEntry(p.Notes, "does not restrict TCP connect") {
				t.Errorf("notes %q do not explain the unhandled connect", p.Notes)
			}
			if !slices.Equal(p.BindTCP, []uint16{9000}) {
				t.Errorf("BindTCP = %v, want [9000]", p.BindTCP)
			}
			if !slices.Equal(p.ConnectUDP, tt.wantUDP) {
				t.Errorf("ConnectUDP = %v, want %v", p.ConnectUDP, tt.wantUDP)
			}
			if wantBindUDP := tt.abi >= 10; wantBindUDP != slices.Equal(p.BindUDP, []uint16{0}) {
				t.Errorf("BindUDP = %v at ABI %d", p.BindUDP, tt.abi)
			}
			if tt.abi >= 6 && p.Scoped != landlock.ScopedSet(ll.ScopeAbstractUnixSocket|ll.ScopeSignal) {
				t.Errorf("Scoped = %v, want both scopes", p.Scoped)
			}
		})
	}
}

func TestPlanUnixSockets(t *testing.T) {
	policy := testPolicy(t)
	sock := policy.Filesystem.Read[0] + "/top.txt" // any existing non-directory will do
	policy.Network.Unix = []string{sock}
	for _, abi := range []int{7, 9} {
		p, err := buildPlan(Spec{Policy: policy}, fakeKernel(abi))
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(p.PathRules, func(r PathRule) bool { return r.Path == sock })
		granted := i >= 0 && p.PathRules[i].Access&ll.AccessFSResolveUnix != 0
		if granted != (abi >= 9) {
			t.Errorf("ABI %d: resolve_unix on %s granted = %v", abi, sock, granted)
		}
	}
}

func TestPlanRefusals(t *testing.T) {
	policy := testPolicy(t)
	noIDs := fakeKernel(7)
	noIDs.canSetIDs = false
	if _, err := buildPlan(Spec{Policy: policy, Creds: &Creds{UID: 65534, GID: 65534}}, noIDs); err == nil {
		t.Error("plan with Creds but no CAP_SETUID/CAP_SETGID: want an error")
	}
	noSeccomp := fakeKernel(7)
	noSeccomp.seccomp = false
	p, err := buildPlan(Spec{Policy: policy}, noSeccomp)
	if err != nil {
		t.Fatal(err)
	}
	if !hasEntry(p.Missing(), "seccomp") || p.seccompProg != nil {
		t.Errorf("kernel without seccomp: Missing() = %q, program set = %v", p.Missing(), p.seccompProg != nil)
	}
	if p.SeccompEvents || p.seccompNotifyProg != nil {
		t.Error("kernel without seccomp: plan has seccomp events")
	}
	noListener := fakeKernel(7)
	noListener.seccompListener, noListener.seccompListenerWhy = false, "no TSYNC_ESRCH"
	p, err = buildPlan(Spec{Policy: policy}, noListener)
	if err != nil {
		t.Fatal(err)
	}
	if !hasEntry(p.Missing(), "seccomp refusal events (no TSYNC_ESRCH)") || p.SeccompEvents || p.seccompNotifyProg != nil || p.seccompProg == nil {
		t.Errorf("kernel without a seccomp listener: Missing() = %q, events %v, notify program %v, errno program %v",
			p.Missing(), p.SeccompEvents, p.seccompNotifyProg != nil, p.seccompProg != nil)
	}
	if p, err = buildPlan(Spec{Policy: policy}, fakeKernel(7)); err != nil {
		t.Fatal(err)
	}
	if !p.SeccompEvents || p.seccompNotifyProg == nil || len(p.Missing()) != 0 {
		t.Errorf("kernel with a seccomp listener: events %v, notify program %v, missing %q", p.SeccompEvents, p.seccompNotifyProg != nil, p.Missing())
	}
	bad := policy
	bad.Network.Bind = []profiles.PortRange{{Lo: 10, Hi: 9}}
	if _, err := buildPlan(Spec{Policy: bad}, fakeKernel(7)); err == nil {
		t.Error("reversed bind range: want an error")
	}
}

func TestExpandPorts(t *testing.T) {
	tests := []struct {
		in      []profiles.PortRange
		want    int
		first   uint16
		wantErr bool
	}{
		{[]profiles.PortRange{port(80)}, 1, 80, false},
		{[]profiles.PortRange{{Lo: 8000, Hi: 8010}, {Lo: 8005, Hi: 8020}, port(22)}, 22, 22, false},
		{[]profiles.PortRange{{Lo: 0, Hi: 65535}, {Lo: 0, Hi: 65535}}, 65536, 0, false},
		{[]profiles.PortRange{{Lo: 2, Hi: 1}}, 0, 0, true},
		{nil, 0, 0, false},
	}
	for _, tt := range tests {
		got, err := expandPorts(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("expandPorts(%v) err = %v", tt.in, err)
			continue
		}
		if len(got) != tt.want || (len(got) > 0 && got[0] != tt.first) || !slices.IsSorted(got) {
			t.Errorf("expandPorts(%v) = %d ports starting %v, want %d starting %d", tt.in, len(got), got[:min(len(got), 3)], tt.want, tt.first)
		}
	}
	// Ports at the edges of the set's 64-bit words.
	edges := []profiles.PortRange{{Lo: 63, Hi: 64}, port(0), port(127), port(128), port(65535)}
	if got, err := expandPorts(edges); err != nil || !slices.Equal(got, []uint16{0, 63, 64, 127, 128, 65535}) {
		t.Errorf("expandPorts(%v) = %v, %v; want [0 63 64 127 128 65535]", edges, got, err)
	}
}
