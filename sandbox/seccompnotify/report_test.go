package seccompnotify

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type events struct {
	mu  sync.Mutex
	all []audit.Event
}

func (e *events) emit(ev audit.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

func (e *events) list() []audit.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]audit.Event(nil), e.all...)
}

func newTestReporter() (*Reporter, *events, *fakeClock) {
	var got events
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	r := NewReporter(got.emit)
	r.now = clock.now
	return r, &got, clock
}

func ptraceRefusal(pid int) Refusal {
	return Refusal{PID: 10, TID: 11, Comm: "node", Syscall: "ptrace", Target: "ptrace PTRACE_ATTACH pid " + strconv.Itoa(pid),
		Errno: unix.EPERM, Reason: "inspects and controls other processes of the same uid"}
}

func TestEventOfARefusal(t *testing.T) {
	e := Event(ptraceRefusal(1))
	want := audit.Event{PID: 10, Comm: "node", Kind: audit.KindSyscall, Target: "ptrace PTRACE_ATTACH pid 1",
		Verdict: audit.VerdictDeny, Layer: audit.LayerSeccomp, Action: audit.ActionNone,
		Reason: "ptrace refused with EPERM by the seccomp deny-list: inspects and controls other processes of the same uid"}
	if e != want {
		t.Errorf("Event() = %+v\nwant      %+v", e, want)
	}
}

// TestRepeatsAreLeftToTheLog: identical refusals are all passed on (the
// audit log folds them); they use one distinct slot.
func TestRepeatsAreLeftToTheLog(t *testing.T) {
	r, got, _ := newTestReporter()
	for range 1000 {
		r.Report(ptraceRefusal(1))
	}
	r.Close()
	if n := len(got.list()); n != 1000 {
		t.Errorf("%d events passed on, want all 1000", n)
	}
}

// TestDistinctCallsAreBounded: a flood of ever-different calls is itemized
// up to maxDistinct a window; the rest is one summary with their count,
// written when the window ends, and the next window itemizes again.
func TestDistinctCallsAreBounded(t *testing.T) {
	r, got, clock := newTestReporter()
	const flood = 1000
	for i := range flood {
		r.Report(ptraceRefusal(i))
	}
	// Repeating an itemized call is still written.
	r.Report(ptraceRefusal(0))
	clock.advance(window)
	r.Report(ptraceRefusal(flood)) // a new window: written, and the old one's summary first
	r.Close()
	evs := got.list()
	if len(evs) != maxDistinct+3 {
		t.Fatalf("%d events, want %d itemized, the repeat, one summary and the next window's", len(evs), maxDistinct)
	}
	summary := evs[maxDistinct+1]
	if summary.Count != flood-maxDistinct || summary.Target != "seccomp refusals not itemized" ||
		summary.Layer != audit.LayerSeccomp || summary.Verdict != audit.VerdictDeny ||
		!strings.Contains(summary.Reason, "ptrace PTRACE_ATTACH pid 999") {
		t.Errorf("summary %+v, want a count of %d naming the last call", summary, flood-maxDistinct)
	}
	if last := evs[len(evs)-1]; last.Target != "ptrace PTRACE_ATTACH pid 1000" || last.Count != 0 {
		t.Errorf("first event of the next window %+v", last)
	}
}

// TestSummaryWrittenWhenTheFloodStops: the summary does not wait for the
// next refusal.
func TestSummaryWrittenWhenTheFloodStops(t *testing.T) {
	var got events
	r := NewReporter(got.emit) // the real clock: the window's timer must fire
	for i := range maxDistinct + 5 {
		r.Report(ptraceRefusal(i))
	}
	deadline := time.Now().Add(10 * window)
	for len(got.list()) < maxDistinct+1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	evs := got.list()
	if len(evs) != maxDistinct+1 || evs[maxDistinct].Count != 5 {
		t.Fatalf("%d events, want %d and a summary of 5", len(evs), maxDistinct+1)
	}
	r.Close()
	if len(got.list()) != maxDistinct+1 {
		t.Error("Close wrote the summary again")
	}
	r.Report(ptraceRefusal(1))
	if len(got.list()) != maxDistinct+1 {
		t.Error("a refusal after Close was written")
	}
}
