package audit

import (
	"time"
)

// repeatWindow is how long identical kernel events are folded into one. The
// first is written at once; repeats within the window are counted and
// written as one record with Count when the window closes (or at Close).
const repeatWindow = time.Second

// repeatKey identifies "the same event" for folding: everything but time,
// pid and count, so a fork bomb of identical attempts folds too.
type repeatKey struct {
	kind    Kind
	target  string
	verdict Verdict
	layer   Layer
	action  Action
	reason  string
	comm    string
}

type pendingRepeat struct {
	last  Event // the most recent repeat, written with Count
	count int
	timer *time.Timer
}

// foldable events are those a misbehaving server can produce at will.
func foldable(e Event) bool {
	return e.Layer == LayerBPF || e.Layer == LayerLandlock || e.Layer == LayerSeccomp || e.Layer == LayerBPFLSM || e.Layer == LayerKernel
}

// fold reports whether e repeats an event written within the window; if so
// it is counted (under l.mu) and written later.
func (l *Log) fold(e Event) bool {
	if !foldable(e) {
		return false
	}
	k := repeatKey{e.Kind, e.Target, e.Verdict, e.Layer, e.Action, e.Reason, e.Comm}
	if p, ok := l.repeats[k]; ok {
		p.last = e
		p.count++
		return true
	}
	p := &pendingRepeat{}
	p.timer = time.AfterFunc(repeatWindow, func() { l.flushRepeat(k) })
	l.repeats[k] = p
	return false
}

// flushRepeat closes one key's window, writing its repeats as one record.
func (l *Log) flushRepeat(k repeatKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.repeats[k]
	if !ok {
		return
	}
	delete(l.repeats, k)
	p.timer.Stop()
	if p.count > 0 {
		e := p.last
		e.Count = p.count
		e.Reason = foldedReason(e.Reason, p.count)
		l.write(e)
	}
}

func foldedReason(reason string, n int) string {
	s := "repeated"
	if n == 1 {
		s = "repeated once more"
	}
	if reason == "" {
		return s + " within " + repeatWindow.String()
	}
	return reason + " (" + s + " within " + repeatWindow.String() + ")"
}

// Flush writes every pending repeat count now (before an exit event, so the
// log reads in order); Close calls it too.
func (l *Log) Flush() { l.flushAllRepeats() }

func (l *Log) flushAllRepeats() {
	l.mu.Lock()
	keys := make([]repeatKey, 0, len(l.repeats))
	for k := range l.repeats {
		keys = append(keys, k)
	}
	l.mu.Unlock()
	for _, k := range keys {
		l.flushRepeat(k)
	}
}
