package bpf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/ringbuf"
)

// eventQueue is how many decoded events wait for the reader of Events. When
// it is full the loader stops draining the ring buffer, so the kernel counts
// what it cannot store as lost instead of anything being dropped here.
const eventQueue = 256

// Loader owns the loaded programs and maps and the event reader.
//
// Nothing is pinned: programs, maps and links live as long as this process
// holds their descriptors, so nothing of a jail outlives mcpjail, and bpffs
// is not needed (Load does not mount it). A daemon that pins will mount it
// with features.EnsureBPFFS and say so.
type Loader struct {
	logger *slog.Logger
	objs   kernelObjects
	// budget is egress.bpf.c's program and map; it shares objs' event and
	// lost maps. Apart from objs because LoadAndAssign of net would look
	// for its fields in net's ELF.
	budget budgetObjects
	// watch holds the tracepoint programs (exec, open, network kill),
	// attached once for every jail; they share objs' jails, event and lost maps.
	watch  *watcher
	reader *ringbuf.Reader
	events chan Event
	stop   chan struct{}
	done   chan struct{} // closed when the reading goroutine has returned
	// flushed is signalled when the reader has passed a Sync flush point.
	flushed chan struct{}

	mu         sync.Mutex
	closed     bool
	jails      map[uint64]*Jail // by cgroup id
	policies   map[uint32]bool  // policy ids in use
	nextPolicy uint32
}

// Load loads the programs and maps into the kernel and starts reading
// events. ctx bounds the load only; Close ends the loader.
func Load(ctx context.Context, logger *slog.Logger) (*Loader, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load eBPF programs: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	l := &Loader{
		logger:     logger,
		events:     make(chan Event, eventQueue),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		flushed:    make(chan struct{}, 1),
		jails:      map[uint64]*Jail{},
		policies:   map[uint32]bool{},
		nextPolicy: 1,
	}
	// One kernel BTF for every object of this load: cilium/ebpf otherwise
	// parses /sys/kernel/btf/vmlinux (about 11 ms) once per object.
	kernelBTF := btf.NewCache()
	if err := loadKernelObjects(&l.objs, kernelBTF); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load eBPF programs: %+v", ve)
		}
		return nil, fmt.Errorf("load eBPF programs: %w", err)
	}
	if err := l.budget.load(&l.objs.netMaps, kernelBTF); err != nil {
		_ = l.objs.Close()
		return nil, fmt.Errorf("load eBPF programs: %w", err)
	}
	w, err := loadWatch(&l.objs.netMaps, kernelBTF, logger)
	if err != nil {
		_ = errors.Join(l.budget.Close(), l.objs.Close())
		return nil, err
	}
	l.watch = w
	rd, err := ringbuf.NewReader(l.objs.McpjailEvents)
	if err != nil {
		_ = errors.Join(w.close(), l.budget.Close(), l.objs.Close())
		return nil, fmt.Errorf("open event ring buffer: %w", err)
	}
	l.reader = rd
	go l.readEvents()
	logger.Debug("eBPF network and watching programs loaded")
	return l, nil
}

// Events delivers decoded kernel events until Close; then it is closed.
// A consumer must keep reading: when it falls behind, the kernel counts the
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

// Close unregisters every jail still registered, stops the event reader and
// unloads everything. It is safe to call more than once.
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
	l.mu.Unlock()

	var errs []error
	for _, j := range left {
		l.logger.Warn("eBPF loader closed with a jail still registered", "cgroup_id", j.cgroupID)
		errs = append(errs, j.Close())
	}
	close(l.stop)
	if err := l.reader.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close event ring buffer: %w", err))
	}
	<-l.done
	if err := l.watch.close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(l.budget.Close(), l.objs.Close()); err != nil {
		errs = append(errs, fmt.Errorf("unload eBPF objects: %w", err))
	}
	return errors.Join(errs...)
}

// readEvents decodes records until the reader is closed.
func (l *Loader) readEvents() {
	defer close(l.done)
	defer close(l.events)
	for {
		rec, err := l.reader.Read()
		if errors.Is(err, ringbuf.ErrClosed) {
			return
		}
		if errors.Is(err, ringbuf.ErrFlushed) {
			// Everything pending when Sync flushed has been queued on Events.
			select {
			case l.flushed <- struct{}{}:
			default:
			}
			continue
		}
		if err != nil {
			// Not expected from an epoll-backed reader; stopping closes
			// Events, which the consumer sees, rather than spinning on it.
			l.logger.Error("eBPF event reader stopped", "err", err)
			return
		}
		ev, err := decodeRecord(rec.RawSample)
		if err != nil {
			// Our programs wrote it: a layout mismatch is a bug worth shouting about.
			l.logger.Error("undecodable eBPF event", "err", err, "bytes", len(rec.RawSample))
			continue
		}
		select {
		case l.events <- ev:
		case <-l.stop:
			return
		}
	}
}
