package profiles

import (
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// LayerBPFLSM is the BPF-LSM deny layer (bpf/lsm.bpf.c): exec, open and
// connect refused in the kernel's LSM hooks, where the kernel runs them.
const LayerBPFLSM = "bpf-lsm"

// requirableLayers are the names `require:` accepts. Every other layer is
// required by default (a missing one refuses the run unless --allow-degraded);
// these are optional unless a profile requires them.
var requirableLayers = []string{LayerBPFLSM}

// Requires reports whether the policy requires the named layer. A required
// layer is never degraded: a kernel without it refuses the run, even with
// --allow-degraded.
func (p *Policy) Requires(layer string) bool { return slices.Contains(p.Require, layer) }

// require reads the top-level `require:` list of layer names.
func (l *loader) require(n *yaml.Node) []string {
	var out []string
	for _, item := range l.seq(n, "require") {
		name, ok := l.str(item, "require")
		if !ok {
			continue
		}
		if !slices.Contains(requirableLayers, name) {
			l.at(nodePos(item), "require: unknown layer %q (known: %s)%s", name,
				strings.Join(requirableLayers, ", "), suggest(name, slices.Clone(requirableLayers)))
			continue
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}
