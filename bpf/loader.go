package bpf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/ringbuf"
)

// eventQueue is how many decoded events wait for the reader of Events. When
// it is full the loader stops draining the ring buffer, so the kernel counts
// what it cannot store as lost instead of anything being dropped here.
const eventQueue = 256

// Loader owns the loaded programs and maps and the event reader.
//
// Load pins nothing: programs, maps and links live as long as this process
// holds their descriptors, so nothing of a jail outlives mcpjail, and bpffs
// is not needed. LoadPinned (pin.go) is the daemon's: everything is pinned
// under a bpffs directory and outlives the process.
type Loader struct {
	logger *slog.Logger
	objs   kernelObjects
	// budget is egress.bpf.c's program and map; it shares objs' event and
	// lost maps. Apart from objs because LoadAndAssign of net would look
	// for its fields in net's ELF.
	budget budgetObjects
	// unixErr says why the UNIX socket programs did not load (nil when they
	// did): jails then get no connect_unix/sendmsg_unix filter (see Missing).
	unixErr error
	// watch holds the tracepoint programs (exec, open, network kill),
	// attached once for every jail; they share objs' jails, event and lost maps.
	watch *watcher
	// lsm is the BPF-LSM deny layer (lsm.go); lsm.err says why it is off.
	lsm    lsmLayer
	reader *ringbuf.Reader
	events chan Event // events of cgroups no jail claims
	stop   chan struct{}
	done   chan struct{} // closed when the reading goroutine has returned

	// pin is the pinned state's directory and lock; nil for Load.
	pin *pinDir

	// rmu guards the routing of events to jails (route.go). It is never
	// held while sending, and never taken before mu.
	rmu      sync.Mutex
	routes   map[uint64]*route // by cgroup id
	open     map[*route]bool   // routes whose channel is not closed yet
	waiters  []flushWaiter
	flushGen uint64 // flush points the reader has passed
	stopped  bool   // the reader has returned

	mu         sync.Mutex
	closed     bool
	jails      map[uint64]*Jail // by cgroup id
	policies   map[uint32]bool  // policy ids in use
	nextPolicy uint32
}

// makeLoader is a Loader with nothing loaded yet.
func makeLoader(logger *slog.Logger) *Loader {
	if logger == nil {
		logger = slog.Default()
	}
	return &Loader{
		logger:     logger,
		events:     make(chan Event, eventQueue),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		routes:     map[uint64]*route{},
		open:       map[*route]bool{},
		jails:      map[uint64]*Jail{},
		policies:   map[uint32]bool{},
		nextPolicy: 1,
	}
}

// Load loads the programs and maps into the kernel, attaches the global
// (tracepoint) programs and starts reading events. ctx bounds the load
// only; Close ends the loader.
func Load(ctx context.Context, logger *slog.Logger) (*Loader, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load eBPF programs: %w", err)
	}
	l := makeLoader(logger)
	if err := l.loadObjects(); err != nil {
		return nil, err
	}
	if err := l.startReader(); err != nil {
		return nil, errors.Join(err, l.closeObjects())
	}
	l.logger.Debug("eBPF network and watching programs loaded")
	return l, nil
}

// loadObjects loads every object and attaches the watching programs. On
// error nothing stays loaded.
func (l *Loader) loadObjects() error {
	// One kernel BTF for every object of this load: cilium/ebpf otherwise
	// parses /sys/kernel/btf/vmlinux (about 11 ms) once per object.
	kernelBTF := btf.NewCache()
	unixErr, err := loadKernelObjects(&l.objs, kernelBTF)
	if err != nil {
		return fmt.Errorf("load eBPF programs: %w", verifierDetail(err))
	}
	l.unixErr = unixErr
	if err := l.budget.load(&l.objs.netMaps, kernelBTF); err != nil {
		_ = l.objs.Close()
		return fmt.Errorf("load eBPF programs: %w", err)
	}
	w, err := loadWatch(&l.objs.netMaps, kernelBTF, l.logger)
	if err != nil {
		_ = errors.Join(l.budget.Close(), l.objs.Close())
		return err
	}
	l.watch = w
	lsm, err := loadLSM(&l.objs.netMaps, kernelBTF, l.logger)
	if err != nil {
		_ = errors.Join(w.close(), l.budget.Close(), l.objs.Close())
		return err
	}
	l.lsm = *lsm
	return nil
}

// Missing names what this kernel refused to load, so that the caller can
// fail closed or run degraded: today only the UNIX socket filter (before
// Linux 6.7; pathname sockets outside network.unix stay reachable without it).
func (l *Loader) Missing() []string {
	if l.unixErr == nil {
		return nil
	}
	return []string{fmt.Sprintf("eBPF UNIX socket filter (%v)", l.unixErr)}
}

// startReader opens the event ring buffer and starts the reading goroutine.
func (l *Loader) startReader() error {
	rd, err := ringbuf.NewReader(l.objs.McpjailEvents)
	if err != nil {
		return fmt.Errorf("open event ring buffer: %w", err)
	}
	l.reader = rd
	go l.readEvents()
	return nil
}

// closeObjects closes the descriptors of everything loadObjects loaded.
// Pinned objects stay in the kernel.
func (l *Loader) closeObjects() error {
	var errs []error
	if l.watch != nil {
		errs = append(errs, l.watch.close())
	}
	errs = append(errs, l.lsm.close())
	if err := errors.Join(l.budget.Close(), l.objs.Close()); err != nil {
		errs = append(errs, fmt.Errorf("unload eBPF objects: %w", err))
	}
	return errors.Join(errs...)
}

// Events delivers the decoded kernel events of cgroups that no jail
// claims: a cgroup created below a jail, and, under LoadPinned, adopted
// jails whose Events has not been called yet. It is closed by Close. A
// consumer must keep reading: when it falls behind, the kernel counts the
// records it cannot store (see Lost).
func (l *Loader) Events() <-chan Event { return l.events }

// Lost is how many records the kernel could not put in the ring buffer,
// summed over CPUs.
func (l *Loader) Lost() (uint64, error) {
	var perCPU []uint64
	if err := l.objs.McpjailLost.Lookup(uint32(0), &perCPU); err != nil {
		return 0, fmt.Errorf("read lost-event counters: %w", err)
	}
	var sum uint64
	for _, n := range perCPU {
		sum += n
	}
	return sum, nil
}

// Close ends the loader; it is safe to call more than once.
//
// A loader from Load unregisters every jail still registered and unloads
// everything. A pinned loader (LoadPinned) detaches and unpins nothing:
// jails stay enforced and their state stays pinned for the next LoadPinned
// to adopt; Close only stops reading events and closes descriptors.
func (l *Loader) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	var left []*Jail
	for _, j := range l.jails {
		left = append(left, j)
	}
	if l.pin != nil {
		clear(l.jails)
	}
	l.mu.Unlock()

	var errs []error
	for _, j := range left {
		if l.pin != nil {
			errs = append(errs, j.closeDescriptors())
			continue
		}
		l.logger.Warn("eBPF loader closed with a jail still registered", "cgroup_id", j.cgroupID)
		errs = append(errs, j.Close())
	}
	close(l.stop)
	if err := l.reader.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close event ring buffer: %w", err))
	}
	<-l.done
	errs = append(errs, l.closeObjects())
	if l.pin != nil {
		errs = append(errs, l.pin.unlock())
	}
	return errors.Join(errs...)
}
