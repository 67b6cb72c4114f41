package profiles

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the loader. Parse must never panic and
// must locate every error; an accepted profile must compile (or fail with
// located errors) into a Policy that keeps the package's invariants, and must
// accept a pin.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	builtins, _ := filepath.Glob("builtin/*.yaml")
	for _, name := range append(files, builtins...) {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data)
		if err != nil {
			checkLocated(t, err)
			return
		}
		pol, err := p.Compile(Vars{Home: "/home/u", Workdir: "/work", TmpDir: "/tmp/mcpjail-x"})
		if err != nil {
			checkLocated(t, err)
			return
		}
		checkPolicy(t, pol)
		if _, err := SetPin(data, "/usr/bin/node", pinHash); err != nil {
			t.Errorf("SetPin refused an accepted profile: %v", err)
		}
	})
}

func checkLocated(t *testing.T, err error) {
	t.Helper()
	var list ErrorList
	if !errors.As(err, &list) || len(list) == 0 {
		t.Fatalf("error is not a non-empty ErrorList: %v", err)
	}
	for _, e := range list {
		if e.File != "fuzz.yaml" || e.Line < 1 || e.Col < 1 || e.Msg == "" {
			t.Errorf("badly located error %+v", e)
		}
	}
}

func checkPolicy(t *testing.T, pol *Policy) {
	t.Helper()
	if checkProfileName(pol.Name) != nil {
		t.Errorf("invalid name %q accepted", pol.Name)
	}
	fs := pol.Filesystem
	for _, list := range [][]string{fs.Read, fs.Write, fs.Exec, fs.Deny, pol.Network.Unix} {
		if !slices.IsSorted(list) {
			t.Errorf("unsorted paths %q", list)
		}
		for _, p := range list {
			if !filepath.IsAbs(p) || filepath.Clean(p) != p {
				t.Errorf("path %q is not absolute and clean", p)
			}
		}
	}
	for _, r := range pol.Network.Egress {
		if !r.Prefix.IsValid() || r.Prefix.Masked() != r.Prefix || r.Prefix.Addr().Is4In6() {
			t.Errorf("bad prefix %v", r.Prefix)
		}
		if r.Protocol != ProtoTCP && r.Protocol != ProtoUDP && r.Protocol != ProtoAny {
			t.Errorf("bad protocol %q", r.Protocol)
		}
		checkPorts(t, r.Ports)
	}
	checkPorts(t, pol.Network.Bind)
	for _, a := range []Action{pol.OnViolation.File, pol.OnViolation.Exec, pol.OnViolation.Network} {
		if a != ActionDeny && a != ActionKill {
			t.Errorf("bad action %q", a)
		}
	}
	if b := pol.Network.EgressBudget; b != nil && (b.Bytes == 0 || b.Per <= 0) {
		t.Errorf("bad budget %+v", b)
	}
}

func checkPorts(t *testing.T, ports []PortRange) {
	t.Helper()
	for i, r := range ports {
		if r.Lo == 0 || r.Lo > r.Hi || (i > 0 && uint32(ports[i-1].Hi)+1 >= uint32(r.Lo)) {
			t.Errorf("ports not normalised: %v", ports)
		}
	}
}
