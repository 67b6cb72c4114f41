package confinement

import "testing"

func TestParseCapEff(t *testing.T) {
	const status = "Name:\tcat\nCapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\nCapBnd:\t000001ffffffffff\n"
	mask, err := ParseCapEff(status)
	if err != nil || mask != 0x1fffeffffff {
		t.Fatalf("ParseCapEff = %#x, %v", mask, err)
	}
	// This machine's set: everything but CAP_SYS_RESOURCE (bit 24).
	want := map[string]bool{"CAP_BPF": true, "CAP_SYS_ADMIN": true, "CAP_NET_ADMIN": true,
		"CAP_PERFMON": true, "CAP_SYS_RESOURCE": false}
	got := CapabilitiesFromMask(mask)
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %v, want %v", name, got[name], w)
		}
	}
	if len(got) != len(CapabilityNames()) {
		t.Errorf("%d capabilities reported, want %d", len(got), len(CapabilityNames()))
	}
	for _, bad := range []string{"Name:\tx\n", "CapEff:\tzz\n", "CapEff:\t\n"} {
		if _, err := ParseCapEff(bad); err == nil {
			t.Errorf("ParseCapEff(%q) succeeded", bad)
		}
	}
	if caps := CapabilitiesFromMask(0); caps["CAP_BPF"] || caps["CAP_SYS_ADMIN"] {
		t.Errorf("empty mask reported capabilities: %v", caps)
	}
}
