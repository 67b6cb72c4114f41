package bpf

import (
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/cilium/ebpf/link"
)

// TestKeepHooksWarm: every jail program is attached to the given cgroup
// until Close, and a task that lands there anyway is refused, not let
// through (the programs find no jail for it); a connect from outside it is
// not affected.
func TestKeepHooksWarm(t *testing.T) {
	requireKernel(t)
	l := newLoader(t)
	g := newGroup(t)
	port := listenTCP(t)
	w, err := l.KeepHooksWarm(g.V2Path())
	if err != nil {
		t.Fatalf("KeepHooksWarm: %v", err)
	}
	for _, a := range l.jailAttachments() {
		if !attachedHere(t, g.V2Path(), a) {
			t.Errorf("%s (%s) is not attached to %s", a.name, a.at, g.V2Path())
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if _, res := runHelper(t, g, []attempt{{Op: "connect", Addr: addr}}); res[0] != "EPERM" {
		t.Errorf("connect from the warm cgroup: %s, want EPERM (no jail there: refused)", res[0])
	}
	if _, res := runHelper(t, nil, []attempt{{Op: "connect", Addr: addr}}); res[0] != "ok" {
		t.Errorf("connect from the test's own cgroup: %s, want ok", res[0])
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, a := range l.jailAttachments() {
		if attachedHere(t, g.V2Path(), a) {
			t.Errorf("%s (%s) is still attached to %s after Close", a.name, a.at, g.V2Path())
		}
	}
	if _, res := runHelper(t, g, []attempt{{Op: "connect", Addr: addr}}); res[0] != "ok" {
		t.Errorf("connect from the cgroup after Close: %s, want ok", res[0])
	}
}

// attachedHere reports whether a's program is attached directly to dir as a.at.
func attachedHere(t *testing.T, dir string, a attachment) bool {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: a.at})
	if err != nil {
		t.Fatalf("query %s on %s: %v", a.at, dir, err)
	}
	info, err := a.prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return slices.ContainsFunc(res.Programs, func(p link.AttachedProgram) bool { return p.ID == id })
}
