package profiles

import (
	"slices"
	"testing"
)

func TestRequire(t *testing.T) {
	p, err := Parse("t.yaml", []byte(header+"require: [bpf-lsm, bpf-lsm]\n"))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := p.Compile(Vars{Home: "/home/u", Workdir: "/w", TmpDir: "/tmp/x"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pol.Require, []string{LayerBPFLSM}) || !pol.Requires(LayerBPFLSM) {
		t.Errorf("Require = %v", pol.Require)
	}
	none, err := Parse("t.yaml", []byte(header))
	if err != nil {
		t.Fatal(err)
	}
	if pol, err := none.Compile(Vars{Home: "/h", Workdir: "/w", TmpDir: "/t"}); err != nil || pol.Requires(LayerBPFLSM) {
		t.Errorf("a profile without require: %v, %v", pol, err)
	}

	_, err = Parse("t.yaml", []byte(header+"require: [bpf-lms, landlock]\n"))
	assertErrors(t, err, `4:11: unknown layer "bpf-lms" (known: bpf-lsm) (did you mean "bpf-lsm"?)`,
		`4:20: unknown layer "landlock"`)
	_, err = Parse("t.yaml", []byte(header+"require: bpf-lsm\n"))
	assertErrors(t, err, "4:10: require must be a list")
}
