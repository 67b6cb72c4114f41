package bpf

import (
	"testing"
	"time"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// TestLostRecordsAreCounted floods the ring buffer while nobody reads
// Events, then checks that every denial is either delivered or counted as
// lost: none vanishes.
func TestLostRecordsAreCounted(t *testing.T) {
	requireKernel(t)
	const attempts = 4000 // well over what 256 KiB of ring and the queue hold
	l := newLoader(t)
	grp := newGroup(t)
	j, err := l.Register(grp.ID(), grp.V2Path(), loopbackPolicy(1))
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	defer j.Close()
	if _, res := runHelper(t, grp, []attempt{{Op: "connect", Addr: "127.0.0.1:2", Repeat: attempts}}); res[0] != "EPERM" {
		t.Fatalf("connect: got %s, want EPERM", res[0])
	}
	lost, err := l.Lost()
	if err != nil {
		t.Fatal(err)
	}
	if lost == 0 {
		t.Fatalf("no record lost with nobody reading %d events; the test does not test anything", attempts)
	}
	// From the flood on, the kernel made the denials and, last, the
	// helper's task_exit record: each is delivered or counted.
	const records = attempts + 1
	delivered := 0
	deadline := time.Now().Add(hangBound)
	for uint64(delivered)+lost < records && time.Now().Before(deadline) {
		select {
		case ev := <-j.Events():
			if ev.Kind == audit.KindExec && ev.Verdict == audit.VerdictAllow {
				continue // the helper's own exec, written before the flood
			}
			if ev.Target != "127.0.0.1:2/tcp" && ev.Kind != audit.KindTaskExit {
				t.Fatalf("unexpected event %+v", ev)
			}
			delivered++
		case <-time.After(10 * time.Millisecond):
		}
	}
	if got := uint64(delivered) + lost; got != records {
		t.Fatalf("%d delivered + %d lost = %d, want %d", delivered, lost, got, records)
	}
	t.Logf("%d delivered, %d lost", delivered, lost)
}
