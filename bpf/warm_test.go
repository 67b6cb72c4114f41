package bpf

import (
	"fmt"
	"testing"
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
		if timesAttached(t, g.V2Path(), a.prog, a.at) != 1 {
			t.Errorf("%s (%s) is not attached to %s once", a.name, a.at, g.V2Path())
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
		if timesAttached(t, g.V2Path(), a.prog, a.at) != 0 {
			t.Errorf("%s (%s) is still attached to %s after Close", a.name, a.at, g.V2Path())
		}
	}
	if _, res := runHelper(t, g, []attempt{{Op: "connect", Addr: addr}}); res[0] != "ok" {
		t.Errorf("connect from the cgroup after Close: %s, want ok", res[0])
	}
}
