package bpf

import (
	"reflect"
	"slices"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// ebpfTags lists the `ebpf` struct tags of v's fields.
func ebpfTags(v any) []string {
	var tags []string
	t := reflect.TypeOf(v)
	for i := range t.NumField() {
		tags = append(tags, t.Field(i).Tag.Get("ebpf"))
	}
	return tags
}

// TestKernelObjectsCoverSpec: every program of the object is loaded by
// exactly one half, and the inet half needs no kernel BTF, which is what
// lets it load while the kernel's BTF is parsed (loadKernelObjects).
func TestKernelObjectsCoverSpec(t *testing.T) {
	spec, err := loadNet()
	if err != nil {
		t.Fatal(err)
	}
	inet, unix := ebpfTags(inetPrograms{}), ebpfTags(unixPrograms{})
	got := slices.Sorted(slices.Values(append(slices.Clone(inet), unix...)))
	var want []string
	for name := range spec.Programs {
		want = append(want, name)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("programs loaded %v, object has %v", got, want)
	}
	if wantAll := ebpfTags(netPrograms{}); !slices.Equal(got, wantAll) {
		t.Fatalf("programs loaded %v, bpf2go generated %v", got, wantAll)
	}
	for _, name := range inet {
		for _, ins := range spec.Programs[name].Instructions {
			if ins.IsKfuncCall() || btf.CORERelocationMetadata(&ins) != nil {
				t.Errorf("%s needs kernel BTF at %v; move it to unixPrograms or drop the relocation", name, ins)
			}
		}
	}
}
