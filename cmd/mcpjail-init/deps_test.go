package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestInitStepLinksNoLoader: the init step runs inside every jail, twice per
// run, until it execs the server. It needs Landlock, seccomp and capability
// calls only; the eBPF loader and the cgroup library stay out of it (package
// features/confinement exists for that), which keeps the code that runs in
// the jail small and its start-up short.
func TestInitStepLinksNoLoader(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list -deps listed nothing")
	}
	const confinement = "github.com/mcpjail/mcpjail/sandbox/features/confinement"
	banned := []string{"github.com/cilium/ebpf", "github.com/containerd/cgroups", "github.com/mcpjail/mcpjail/bpf", "github.com/mcpjail/mcpjail/sandbox/features"}
	for _, dep := range deps {
		if dep == confinement {
			continue
		}
		for _, b := range banned {
			if dep == b || strings.HasPrefix(dep, b+"/") {
				t.Errorf("mcpjail-init links %s", dep)
			}
		}
	}
}
