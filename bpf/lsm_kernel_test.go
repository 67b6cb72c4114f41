package bpf

import (
	"context"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox/features"
)

// TestLSMLayerAgreesWithProbe: the loader uses the BPF-LSM layer exactly
// where doctor's probe says the kernel loads and attaches LSM programs, and
// says why not elsewhere.
func TestLSMLayerAgreesWithProbe(t *testing.T) {
	requireKernel(t)
	l := newLoader(t)
	probed := lsmProbed(t)
	lsmErr := l.LSM()
	t.Logf("probe: %v; loader: %v", probed, lsmErr)
	if probed != (lsmErr == nil) {
		t.Fatalf("doctor's probe says BPF LSM usable=%v, the loader says %v", probed, lsmErr)
	}
	if lsmErr != nil && !strings.Contains(lsmErr.Error(), "BPF-LSM layer unavailable") {
		t.Errorf("unhelpful reason: %v", lsmErr)
	}
	for _, m := range l.Missing() {
		if strings.Contains(m, "LSM") {
			t.Errorf("Missing() lists the optional LSM layer: %q (that would refuse every run without it)", m)
		}
	}
}

// lsmProbed says doctor's probes found every BPF-LSM hook usable; a probe
// that did not run fails the test.
func lsmProbed(t testing.TB) bool {
	t.Helper()
	results, err := features.ProbeBPF(context.Background(), features.BPFProbeEnv{})
	if err != nil {
		t.Fatal(err)
	}
	probed := true
	for _, name := range features.LSMProbes() {
		r, ok := findProbe(results, name)
		if !ok {
			t.Fatalf("probe %s did not run", name)
		}
		probed = probed && r.OK
	}
	return probed
}

func findProbe(rs []features.ProbeResult, name string) (features.ProbeResult, bool) {
	for _, r := range rs {
		if r.Name == name {
			return r, true
		}
	}
	return features.ProbeResult{}, false
}

// TestRegisterRequiredLSM: a policy that requires the layer registers only
// where it is active, and then its filesystem rules are in the map; where it
// is not, registration is refused and leaves nothing behind.
func TestRegisterRequiredLSM(t *testing.T) {
	requireKernel(t)
	l := newLoader(t)
	g := newGroup(t)
	dir := t.TempDir()
	p := &profiles.Policy{Name: "t", Require: []string{profiles.LayerBPFLSM},
		Filesystem:  profiles.Filesystem{Read: []string{dir}, Deny: []string{dir + "/missing"}},
		OnViolation: profiles.DefaultOnViolation()}
	j, err := l.Register(g.ID(), g.V2Path(), p)
	if l.LSM() != nil {
		if err == nil || !strings.Contains(err.Error(), "requires the bpf-lsm layer") {
			t.Fatalf("Register on a kernel without BPF LSM: err = %v", err)
		}
		if n := mapLen(t, l.lsm.objs.McpjailFsrules); n != 0 {
			t.Errorf("%d filesystem rules left after a refused registration", n)
		}
		if len(l.Jails()) != 0 {
			t.Errorf("jails left: %v", l.Jails())
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if n := mapLen(t, l.lsm.objs.McpjailFsrules); n != 1 { // dir; the missing deny path has no file
		t.Errorf("%d filesystem rules, want 1", n)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if n := mapLen(t, l.lsm.objs.McpjailFsrules); n != 0 {
		t.Errorf("%d filesystem rules left after Close", n)
	}
}

func mapLen(t *testing.T, m *ebpf.Map) int {
	t.Helper()
	var (
		k lsmFsKey
		v uint8
		n int
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}
