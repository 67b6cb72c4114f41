package bpf

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// closeLinks detaches links concurrently. Detaching a cgroup program can
// wait for an RCU grace period, and concurrent detaches share them. The last
// close of a syscall tracepoint's perf event does not: the kernel serialises
// those (see DetachFiles).
func closeLinks(what string, links []link.Link) error {
	errs := make([]error, len(links))
	var wg sync.WaitGroup
	for i, lk := range links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := lk.Close(); err != nil {
				errs[i] = fmt.Errorf("detach %s: %w", what, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// DetachFiles returns duplicates of the descriptors of this loader's
// host-wide attachments (the syscall tracepoint and tp_btf links), for a
// process that outlives the caller to hold and close. Detaching them is
// what makes a standalone run slow to end: each syscall tracepoint link's
// release waits for an RCU tasks-trace grace period, and the last close of
// its perf event unregisters the tracepoint and waits for more, under the
// kernel's event_mutex, so one after the other (~35 ms each on this
// project's hosts, ~0.5 s for a run). With the duplicates held elsewhere,
// Close only drops references; the programs stay attached, finding no jail,
// until the holder closes its copies. The caller owns the files.
//
// A pinned loader (LoadPinned) returns none: its links are never closed.
func (l *Loader) DetachFiles() ([]*os.File, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.pin != nil || l.watch == nil {
		return nil, nil
	}
	var files []*os.File
	for _, lk := range l.watch.links {
		f, err := dupLink(lk)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// dupLink duplicates a link's descriptor: the bpf_link where the kernel has
// them, else (before Linux 5.15) the perf event the program is attached to.
func dupLink(lk link.Link) (*os.File, error) {
	if h, ok := lk.(interface{ FD() int }); ok {
		fd, err := unix.FcntlInt(uintptr(h.FD()), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("duplicate link: %w", err)
		}
		return os.NewFile(uintptr(fd), "bpf-link"), nil
	}
	if h, ok := lk.(link.PerfEvent); ok {
		f, err := h.PerfEvent()
		if err != nil {
			return nil, fmt.Errorf("duplicate tracepoint perf event: %w", err)
		}
		return f, nil
	}
	return nil, fmt.Errorf("duplicate link: %T has no descriptor", lk)
}
