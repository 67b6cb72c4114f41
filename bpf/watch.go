package bpf

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"github.com/mcpjail/mcpjail/sandbox/features"
)

// watcher holds the watching programs (exec.bpf.c, file.bpf.c,
// netwatch.bpf.c, sockwatch.bpf.c, task.bpf.c) and their links.
// Tracepoints are global, so they are attached once per Loader, not per
// jail; each program returns at once for a task whose cgroup is not in the
// jails map.
type watcher struct {
	exec      execObjectsLoaded
	file      fileObjectsLoaded
	netwatch  netwatchObjectsLoaded
	sockwatch sockwatchObjectsLoaded
	task      taskObjectsLoaded
	links     []link.Link
}

// The *ObjectsLoaded types ask bpf2go's loaders for programs and maps only:
// the record-type anchors' .bss map is never created (see kernelObjects).
type execObjectsLoaded struct {
	execPrograms
	execMaps
}

type fileObjectsLoaded struct {
	filePrograms
	fileMaps
}

type netwatchObjectsLoaded struct {
	netwatchPrograms
	netwatchMaps
}

type sockwatchObjectsLoaded struct {
	sockwatchPrograms
	sockwatchMaps
}

type taskObjectsLoaded struct {
	taskPrograms
	taskMaps
}

// tracepoint is one syscall tracepoint and its program. optional marks
// syscalls some architectures lack (open and creat are x86_64 only).
type tracepoint struct {
	name     string
	prog     *ebpf.Program
	optional bool
}

// loadWatch loads the watching programs against the loader's shared maps
// (one jails map, one ring buffer, one lost counter for every object) and
// attaches them. tracefs must be mounted to resolve tracepoint ids; it is
// mounted here if missing. kernelBTF is the loader's parsed kernel BTF,
// shared so that it is parsed once. On error nothing of it remains.
func loadWatch(shared *netMaps, kernelBTF *btf.Cache, logger *slog.Logger) (_ *watcher, err error) {
	w := &watcher{}
	defer func() {
		if err != nil {
			err = errors.Join(err, w.close())
		}
	}()
	replace := map[string]*ebpf.Map{
		"mcpjail_jails":  shared.McpjailJails,
		"mcpjail_events": shared.McpjailEvents,
		"mcpjail_lost":   shared.McpjailLost,
	}
	if err := loadExecObjects(&w.exec, &ebpf.CollectionOptions{MapReplacements: replace, Cache: kernelBTF}); err != nil {
		return nil, fmt.Errorf("load exec watch programs: %w", verifierDetail(err))
	}
	// One map of socket markers: a thread is in one syscall at a time.
	replace["mcpjail_pending"] = w.exec.McpjailPending
	if err := loadFileObjects(&w.file, &ebpf.CollectionOptions{MapReplacements: replace, Cache: kernelBTF}); err != nil {
		return nil, fmt.Errorf("load open watch programs: %w", verifierDetail(err))
	}
	if err := loadNetwatchObjects(&w.netwatch, &ebpf.CollectionOptions{MapReplacements: replace, Cache: kernelBTF}); err != nil {
		return nil, fmt.Errorf("load network watch programs: %w", verifierDetail(err))
	}
	if err := loadSockwatchObjects(&w.sockwatch, &ebpf.CollectionOptions{MapReplacements: replace, Cache: kernelBTF}); err != nil {
		return nil, fmt.Errorf("load socket watch programs: %w", verifierDetail(err))
	}
	if err := loadTaskObjects(&w.task, &ebpf.CollectionOptions{MapReplacements: replace, Cache: kernelBTF}); err != nil {
		return nil, fmt.Errorf("load fork and exit watch programs: %w", verifierDetail(err))
	}

	// cilium/ebpf looks the tracefs mount up once per process and remembers
	// a failure: mount it before the first attach.
	mounted, err := features.EnsureTraceFS()
	if err != nil {
		return nil, fmt.Errorf("syscall tracepoints need tracefs: %w", err)
	}
	if mounted {
		logger.Info("mounted tracefs for the syscall tracepoints", "path", features.TraceFSPath)
	}
	for _, p := range w.rawTracepoints() {
		lk, err := link.AttachTracing(link.TracingOptions{Program: p, AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			return nil, fmt.Errorf("attach %v: %w", p, err)
		}
		w.links = append(w.links, lk)
	}
	for _, tp := range w.tracepoints() {
		lk, err := link.Tracepoint("syscalls", tp.name, tp.prog, nil)
		if err != nil {
			if tp.optional && errors.Is(err, os.ErrNotExist) {
				logger.Debug("syscall not on this architecture, not watched", "tracepoint", tp.name)
				continue
			}
			return nil, fmt.Errorf("attach tracepoint syscalls/%s: %w", tp.name, err)
		}
		w.links = append(w.links, lk)
	}
	return w, nil
}

// rawTracepoints are the tp_btf programs (sched_process_*).
func (w *watcher) rawTracepoints() []*ebpf.Program {
	return []*ebpf.Program{w.exec.McpjailExec, w.task.McpjailFork, w.task.McpjailExit}
}

// tracepoints are the syscall tracepoints. Open, connect and exec are
// watched at sys_exit alone (see watch.h); only socket and socketpair need
// sys_enter, for sockwatch.bpf.c's marker.
func (w *watcher) tracepoints() []tracepoint {
	e, f, n, s := &w.exec, &w.file, &w.netwatch, &w.sockwatch
	return []tracepoint{
		{name: "sys_exit_execve", prog: e.McpjailExeOut},
		{name: "sys_exit_execveat", prog: e.McpjailExaOut},
		{name: "sys_exit_openat", prog: f.McpjailOpnOut},
		{name: "sys_exit_openat2", prog: f.McpjailOp2Out},
		{name: "sys_exit_open", prog: f.McpjailOldOut, optional: true},
		{name: "sys_exit_creat", prog: f.McpjailCrtOut, optional: true},
		{name: "sys_exit_connect", prog: n.McpjailConOut},
		{name: "sys_exit_sendto", prog: n.McpjailStoOut},
		{name: "sys_exit_sendmsg", prog: n.McpjailSmgOut},
		{name: "sys_exit_sendmmsg", prog: n.McpjailSmmOut},
		{name: "sys_enter_socket", prog: s.McpjailSckIn},
		{name: "sys_exit_socket", prog: s.McpjailSckOut},
		{name: "sys_enter_socketpair", prog: s.McpjailSprIn},
		{name: "sys_exit_socketpair", prog: s.McpjailSprOut},
	}
}

// programs lists every watching program (for leak checks).
func (w *watcher) programs() []*ebpf.Program {
	progs := w.rawTracepoints()
	for _, tp := range w.tracepoints() {
		progs = append(progs, tp.prog)
	}
	return progs
}

// purgePending removes the socket markers (sockwatch.bpf.c) of a jail's
// threads. Entries normally go at sys_exit or thread exit, but sys_exit
// skips a cgroup that is no longer registered, so a jail closed while its
// threads sat in socket or socketpair would leave them.
func (w *watcher) purgePending(cgroupID uint64) error {
	m := w.exec.McpjailPending
	var (
		tid  uint32
		p    execPending
		mine []uint32
	)
	it := m.Iterate()
	for it.Next(&tid, &p) {
		if p.CgroupId == cgroupID {
			mine = append(mine, tid)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("list socket markers: %w", err)
	}
	var errs []error
	for _, tid := range mine {
		if err := m.Delete(tid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("remove socket marker of thread %d: %w", tid, err))
		}
	}
	return errors.Join(errs...)
}

// objects lists the loaded object structs, whose tagged programs and maps
// LoadPinned pins and adopts by name (pin.go). A new object goes here and
// in close.
func (w *watcher) objects() []any {
	return []any{&w.exec, &w.file, &w.netwatch, &w.sockwatch, &w.task}
}

// close detaches, then unloads. Safe on a partly loaded watcher.
func (w *watcher) close() error {
	errs := []error{closeLinks("watch program", w.links)}
	w.links = nil
	for _, c := range []interface{ Close() error }{
		&w.exec.execPrograms, &w.exec.execMaps,
		&w.file.filePrograms, &w.file.fileMaps,
		&w.netwatch.netwatchPrograms, &w.netwatch.netwatchMaps,
		&w.sockwatch.sockwatchPrograms, &w.sockwatch.sockwatchMaps,
		&w.task.taskPrograms, &w.task.taskMaps,
	} {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("unload watch objects: %w", err))
		}
	}
	return errors.Join(errs...)
}

// verifierDetail keeps the verifier's log in the error, which is what a
// reader needs when a program is refused.
func verifierDetail(err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return fmt.Errorf("%+v", ve)
	}
	return err
}
