package bpf

import (
	"errors"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// route is where the reader delivers one jail's events.
type route struct {
	ch chan Event
	// claimed is false for a jail LoadPinned adopted until its Events is
	// first called: until then the daemon has not matched the jail to its
	// own state, and the jail's events go to the loader's channel.
	claimed bool
	closed  bool
}

// flushWaiter runs done(true) on the reader goroutine, with l.rmu held,
// once the reader has delivered every record that was in the ring buffer
// when the waiter was added (see passFlush); done(false) if the reader stops
// first.
type flushWaiter struct {
	gen  uint64
	done func(passed bool)
}

// addRoute makes cgroupID's events go to a new channel. An earlier route of
// the same id (a jail closed and registered again) keeps its pending close.
func (l *Loader) addRoute(cgroupID uint64, claimed bool) *route {
	r := &route{ch: make(chan Event, eventQueue), claimed: claimed}
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if l.stopped {
		// The reader is gone: nothing will ever be delivered.
		r.closed = true
		close(r.ch)
		return r
	}
	l.routes[cgroupID] = r
	l.open[r] = true
	return r
}

// claim sends r's events to its own channel from now on.
func (l *Loader) claim(r *route) {
	l.rmu.Lock()
	r.claimed = true
	l.rmu.Unlock()
}

// retireRoute closes r's channel once the records already in the ring
// buffer have been delivered to it, so that a jail's last events (those
// written before Jail.Close) still reach its reader. It does not wait.
func (l *Loader) retireRoute(cgroupID uint64, r *route) {
	l.addFlushWaiter(func(bool) { l.retire(cgroupID, r) })
	// An error means the reader is closed, and its exit closes r.
	_ = l.reader.Flush()
}

// retire removes r, unless cgroupID was registered again meanwhile, and
// closes its channel. Called with l.rmu held.
func (l *Loader) retire(cgroupID uint64, r *route) {
	if l.routes[cgroupID] == r {
		delete(l.routes, cgroupID)
	}
	l.closeRoute(r)
}

// closeRoute closes r's channel once. Called with l.rmu held, on the reader
// goroutine (the only sender), or after it has returned.
func (l *Loader) closeRoute(r *route) {
	if !r.closed {
		r.closed = true
		close(r.ch)
		delete(l.open, r)
	}
}

// addFlushWaiter registers done for the second flush point from now.
//
// The ring buffer reader reports a flush (ErrFlushed) after draining the
// ring empty, but the drain may have happened before the waiter existed
// (the flush signal can be consumed by a drain already under way). The
// second flush point counted after the waiter was added comes from a drain
// that started after it, so every record written before it has been read.
func (l *Loader) addFlushWaiter(done func(passed bool)) {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if l.stopped {
		done(false)
		return
	}
	l.waiters = append(l.waiters, flushWaiter{gen: l.flushGen, done: done})
}

// passFlush counts a flush point and runs the waiters it satisfies. It
// reports whether waiters remain, which need one more flush.
func (l *Loader) passFlush() bool {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	l.flushGen++
	left := l.waiters[:0]
	for _, w := range l.waiters {
		if l.flushGen >= w.gen+2 {
			w.done(true)
			continue
		}
		left = append(left, w)
	}
	clear(l.waiters[len(left):])
	l.waiters = left
	return len(left) > 0
}

// destination is the channel for an event of cgroupID: its jail's, or the
// loader's when no jail claims it.
func (l *Loader) destination(cgroupID uint64) chan Event {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if r := l.routes[cgroupID]; r != nil && r.claimed && !r.closed {
		return r.ch
	}
	return l.events
}

// stopRoutes runs when the reader returns: every channel is closed and
// every waiter released (Sync reports the stop through l.done).
func (l *Loader) stopRoutes() {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	l.stopped = true
	for r := range l.open {
		l.closeRoute(r)
	}
	for _, w := range l.waiters {
		w.done(false)
	}
	l.waiters = nil
	clear(l.routes)
	close(l.events)
}

// readEvents decodes records until the reader is closed and delivers each
// to its destination. A full channel blocks the reader (back-pressure): the
// kernel then counts what it cannot store as lost, and nothing is dropped
// here.
func (l *Loader) readEvents() {
	defer close(l.done)
	defer l.stopRoutes()
	for {
		rec, err := l.reader.Read()
		if errors.Is(err, ringbuf.ErrClosed) {
			return
		}
		if errors.Is(err, ringbuf.ErrFlushed) {
			if l.passFlush() {
				if err := l.reader.Flush(); err != nil {
					return // closed meanwhile
				}
			}
			continue
		}
		if err != nil {
			// Not expected from an epoll-backed reader; stopping closes
			// every channel, which the consumers see, rather than spinning.
			l.logger.Error("eBPF event reader stopped", "err", err)
			return
		}
		ev, err := decodeRecord(rec.RawSample)
		if err != nil {
			// Our programs wrote it: a layout mismatch is a bug worth shouting about.
			l.logger.Error("undecodable eBPF event", "err", err, "bytes", len(rec.RawSample))
			continue
		}
		if l.reportedByLSM(ev) {
			continue
		}
		select {
		case l.destination(ev.CgroupID) <- ev:
		case <-l.stop:
			return
		}
	}
}

// Events delivers the jail's decoded kernel events. The channel is closed
// once the records written before Jail.Close have been delivered, or when
// the loader stops. A consumer must keep reading until then: a full channel
// holds up every jail's events, and the kernel counts what it cannot store
// as lost. For a jail LoadPinned adopted, the first call moves the jail's
// events from Loader.Events to this channel.
func (j *Jail) Events() <-chan Event {
	j.loader.claim(j.route)
	return j.route.ch
}

// reportedByLSM says whether ev, an EPERM open or exec seen at sys_exit, is
// the BPF-LSM hook's own refusal, which that hook already reported with the
// resolved path. One that killed is kept: its kill must be explained, and
// user space kills the rest of the jail on it.
func (l *Loader) reportedByLSM(ev Event) bool {
	return ev.Layer == audit.LayerKernel && (ev.Kind == audit.KindExec || ev.Kind == audit.KindOpen) &&
		ev.Action != audit.ActionKill && l.LSM() == nil
}
