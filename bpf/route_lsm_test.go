package bpf

import (
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// TestLSMRefusalsAreReportedOnce: where the BPF-LSM layer is active, an
// EPERM open or exec seen at sys_exit is the hook's own refusal, already
// reported with the resolved path; one that killed is kept, and nothing is
// dropped where the layer is not active.
func TestLSMRefusalsAreReportedOnce(t *testing.T) {
	ev := Event{Kind: audit.KindOpen, Layer: audit.LayerKernel, Errno: unix.EPERM, Verdict: audit.VerdictDeny}
	active := &Loader{}
	active.lsm.objs.McpjailLsmOpen = &ebpf.Program{}
	if !active.reportedByLSM(ev) {
		t.Error("an EPERM open with the LSM active was kept: it would be reported twice")
	}
	exec := ev
	exec.Kind = audit.KindExec
	if !active.reportedByLSM(exec) {
		t.Error("an EPERM exec with the LSM active was kept: it would be reported twice")
	}
	killed := ev
	killed.Action = audit.ActionKill
	if active.reportedByLSM(killed) {
		t.Error("an event whose kill must be explained was dropped")
	}
	landlock := ev
	landlock.Layer, landlock.Errno = audit.LayerLandlock, unix.EACCES
	if active.reportedByLSM(landlock) {
		t.Error("Landlock's EACCES was dropped")
	}
	if (&Loader{}).reportedByLSM(ev) {
		t.Error("an EPERM open was dropped although no LSM layer reported it")
	}
}
