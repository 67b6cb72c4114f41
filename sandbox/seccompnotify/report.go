package seccompnotify

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// Bounds on what a flood of refusals can write. The audit log folds
// identical events into one record a second; calls with ever-changing
// arguments (ptrace of pid 1, 2, 3, ...) would not fold, so within one
// window only the first maxDistinct different (target, comm) pairs are
// itemized, and the rest are counted into one summary event.
const (
	window      = time.Second
	maxDistinct = 64
)

// Reporter turns refusals into audit events (kind syscall, layer seccomp,
// verdict deny). It is safe for concurrent use.
type Reporter struct {
	emit func(audit.Event)
	now  func() time.Time

	mu     sync.Mutex
	start  time.Time          // of the current window
	seen   map[[2]string]bool // (target, comm) pairs itemized in it
	over   int                // refusals counted, not itemized, in it
	last   Refusal            // the last of those
	flush  *time.Timer        // writes the summary when the window ends
	closed bool
}

// NewReporter reports through emit (audit.Log.Emit for a run).
func NewReporter(emit func(audit.Event)) *Reporter {
	return &Reporter{emit: emit, now: time.Now, seen: map[[2]string]bool{}}
}

// Event is the audit event of one refusal.
func Event(r Refusal) audit.Event {
	return audit.Event{PID: r.PID, Comm: r.Comm, Kind: audit.KindSyscall, Target: r.Target, Verdict: audit.VerdictDeny,
		Layer: audit.LayerSeccomp, Action: audit.ActionNone,
		Reason: fmt.Sprintf("%s refused with %s by the seccomp deny-list: %s", r.Syscall, unix.ErrnoName(r.Errno), r.Reason)}
}

// Report writes r's event, or counts it when the window already itemized
// maxDistinct different calls.
func (rp *Reporter) Report(r Refusal) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.closed {
		return
	}
	if now := rp.now(); now.Sub(rp.start) >= window {
		rp.writeSummary()
		rp.start = now
		clear(rp.seen)
	}
	key := [2]string{r.Target, r.Comm}
	if !rp.seen[key] {
		if len(rp.seen) >= maxDistinct {
			rp.over++
			rp.last = r
			if rp.flush == nil {
				rp.flush = time.AfterFunc(window-rp.now().Sub(rp.start), rp.endWindow)
			}
			return
		}
		rp.seen[key] = true
	}
	rp.emit(Event(r))
}

// Close writes what is still counted; later refusals are not reported.
func (rp *Reporter) Close() {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	rp.writeSummary()
	rp.closed = true
}

func (rp *Reporter) endWindow() {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	rp.writeSummary()
}

// writeSummary writes the window's uncounted refusals as one event; rp.mu
// is held.
func (rp *Reporter) writeSummary() {
	if rp.flush != nil {
		rp.flush.Stop()
		rp.flush = nil
	}
	if rp.over == 0 {
		return
	}
	e := Event(rp.last)
	e.Target = "seccomp refusals not itemized"
	e.Count = rp.over
	e.Reason = fmt.Sprintf("%d more call(s) refused by the seccomp deny-list within %s after %d different ones were reported (the last: %s)",
		rp.over, window, maxDistinct, rp.last.Target)
	rp.over = 0
	rp.emit(e)
}
