package bpf

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/features"
)

// Layout of a pinned loader's directory (LoadPinned):
//
//	stamp              array map: which build pinned the set; pinned last
//	maps/<name>        every map, by its name in the C sources
//	progs/<name>       every program
//	links/<NN>         the global (tracepoint) links, numbered
//	jails/<cgroup id>/ one jail's cgroup links, by attachment name
//
// A jail directory being created is "<id>-new" and renamed when complete;
// one being removed is first renamed "<id>-closing". Either left behind by
// a crash is a registration that never completed or an unregistration that
// started: LoadPinned finishes removing it.
const (
	stampPin      = "stamp"
	mapsDir       = "maps"
	progsDir      = "progs"
	linksDir      = "links"
	jailsDir      = "jails"
	pendingSuffix = "-new" // bpffs refuses names with a dot
	closingSuffix = "-closing"
)

// cleanupHint is how an operator gets out of a pinned set LoadPinned refuses.
const cleanupHint = "run `mcpjail daemon --cleanup` to remove it (every jail then loses its eBPF enforcement)"

// pinDir is a pinned loader's directory, locked for the loader's lifetime.
type pinDir struct {
	path string
	lock *os.File // flock(LOCK_EX) held: one loader, or Cleanup, at a time
}

func (p *pinDir) sub(parts ...string) string {
	return filepath.Join(append([]string{p.path}, parts...)...)
}

func (p *pinDir) jailPath(cgroupID uint64) string {
	return p.sub(jailsDir, strconv.FormatUint(cgroupID, 10))
}

// unlock releases the lock (closing the descriptor drops the flock).
func (p *pinDir) unlock() error {
	if err := p.lock.Close(); err != nil {
		return fmt.Errorf("unlock %s: %w", p.path, err)
	}
	return nil
}

// openPinDir checks that dir is a directory inside a bpffs mount (never the
// mount's root, which holds the kernel's own pins) and locks it. create
// makes it, mounting bpffs at /sys/fs/bpf first when dir is under it; without
// create a missing dir is (nil, nil).
func openPinDir(dir string, create bool, logger *slog.Logger) (*pinDir, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("pin directory %q is not an absolute path", dir)
	}
	dir = filepath.Clean(dir)
	if create {
		if strings.HasPrefix(dir, features.BPFFSPath+"/") {
			mounted, err := features.EnsureBPFFS()
			if err != nil {
				return nil, fmt.Errorf("pin eBPF objects under %s: %w", dir, err)
			}
			if mounted {
				logger.Info("mounted bpffs to pin the eBPF programs", "path", features.BPFFSPath)
			}
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create pin directory: %w", err)
		}
	}
	var st, parent unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		if errors.Is(err, unix.ENOENT) && !create {
			return nil, nil
		}
		return nil, fmt.Errorf("pin directory %s: %w", dir, err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return nil, fmt.Errorf("pin directory %s: %w", dir, err)
	}
	if fs.Type != unix.BPF_FS_MAGIC {
		return nil, fmt.Errorf("pin directory %s is not on a bpffs", dir)
	}
	if err := unix.Stat(filepath.Dir(dir), &parent); err != nil {
		return nil, fmt.Errorf("pin directory %s: %w", dir, err)
	}
	if st.Dev != parent.Dev {
		return nil, fmt.Errorf("pin directory %s is the root of a bpffs mount; use a directory inside it", dir)
	}
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("pin directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("pin directory %s is in use by another mcpjail process (a running daemon?)", dir)
		}
		return nil, fmt.Errorf("lock pin directory %s: %w", dir, err)
	}
	return &pinDir{path: dir, lock: f}, nil
}

// LoadPinned is Load for the daemon: every program, map and global link is
// pinned under dir (a directory inside a bpffs mount, e.g.
// /sys/fs/bpf/mcpjail; bpffs is mounted at /sys/fs/bpf when dir is under it
// and it is missing, and the log says so), and so are the cgroup links of
// every jail Register creates. Pinned state outlives the process: when it
// dies, its jails stay enforced.
//
// An empty dir gets a fresh load. A dir holding a complete set pinned by
// the same build (see stamp) is adopted: nothing is loaded or attached
// again, and every pinned jail becomes a Jail again (Jails), its events on
// Loader.Events until its Events is called. Registrations and
// unregistrations a crash interrupted are finished (removed). A set from
// another build, or an incomplete one, is refused with an error naming the
// way out (`mcpjail daemon --cleanup`); nothing is half-adopted.
//
// dir is locked while the loader lives: a second LoadPinned or Cleanup of
// it fails. ctx bounds the load only.
func LoadPinned(ctx context.Context, logger *slog.Logger, dir string) (_ *Loader, err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load pinned eBPF programs: %w", err)
	}
	l := makeLoader(logger)
	pd, err := openPinDir(dir, true, l.logger)
	if err != nil {
		return nil, err
	}
	l.pin = pd
	defer func() {
		if err != nil {
			err = errors.Join(err, l.abandon())
		}
	}()
	ents, err := os.ReadDir(pd.path)
	if err != nil {
		return nil, fmt.Errorf("read pin directory: %w", err)
	}
	if len(ents) == 0 {
		if err := l.loadObjects(); err != nil {
			return nil, err
		}
		if err := l.pinAll(); err != nil {
			// Nothing of the set may stay: it would read as incomplete.
			return nil, errors.Join(fmt.Errorf("pin eBPF objects under %s: %w", pd.path, err), removePins(pd.path))
		}
		l.logger.Info("eBPF programs loaded and pinned", "dir", pd.path)
	} else {
		if err := l.adopt(); err != nil {
			return nil, fmt.Errorf("adopt the eBPF state pinned under %s: %w", pd.path, err)
		}
		l.logger.Info("adopted the pinned eBPF programs", "dir", pd.path, "jails", len(l.jails))
	}
	if err := l.startReader(); err != nil {
		return nil, err
	}
	return l, nil
}

// abandon closes every descriptor of a pinned loader that failed to start,
// leaving what is pinned as it is, and unlocks its directory.
func (l *Loader) abandon() error {
	var errs []error
	for _, j := range l.jails {
		errs = append(errs, j.closeDescriptors())
	}
	clear(l.jails)
	errs = append(errs, l.closeObjects(), l.pin.unlock())
	return errors.Join(errs...)
}

// Jails lists the registered jails, adopted ones included, by cgroup id.
func (l *Loader) Jails() []*Jail {
	l.mu.Lock()
	defer l.mu.Unlock()
	js := make([]*Jail, 0, len(l.jails))
	for _, j := range l.jails {
		js = append(js, j)
	}
	slices.SortFunc(js, func(a, b *Jail) int { return cmp.Compare(a.cgroupID, b.cgroupID) })
	return js
}

// objectRoots lists the loaded object structs, for objectFields.
func (l *Loader) objectRoots() []any {
	return append([]any{&l.objs, &l.budget, &l.lsm.objs}, l.watch.objects()...)
}

// objectFields maps the `ebpf` tag of every *ebpf.Program and *ebpf.Map
// field under roots (pointers to bpf2go-style structs; embedded structs are
// followed) to the fields that carry it: a map the objects share appears
// once per object, under one name.
func objectFields(roots []any) (progs, mps map[string][]reflect.Value, err error) {
	progType, mapType := reflect.TypeFor[*ebpf.Program](), reflect.TypeFor[*ebpf.Map]()
	progs, mps = map[string][]reflect.Value{}, map[string][]reflect.Value{}
	var walk func(v reflect.Value) error
	walk = func(v reflect.Value) error {
		t := v.Type()
		for i := range t.NumField() {
			f, fv := t.Field(i), v.Field(i)
			switch {
			case f.Type == progType || f.Type == mapType:
				name := f.Tag.Get("ebpf")
				if name == "" || !fv.CanSet() {
					return fmt.Errorf("field %s.%s: no ebpf tag, or not settable", t, f.Name)
				}
				if f.Type == progType {
					progs[name] = append(progs[name], fv)
				} else {
					mps[name] = append(mps[name], fv)
				}
			case f.Anonymous && f.Type.Kind() == reflect.Struct:
				if err := walk(fv); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, r := range roots {
		v := reflect.ValueOf(r)
		if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
			return nil, nil, fmt.Errorf("%T is not a pointer to a struct", r)
		}
		if err := walk(v.Elem()); err != nil {
			return nil, nil, err
		}
	}
	return progs, mps, nil
}

// pinAll pins a fresh load: maps, programs, global links, an empty jails
// directory, and the stamp last, so that a set without a stamp is known
// to be incomplete.
func (l *Loader) pinAll() error {
	progs, mps, err := objectFields(l.objectRoots())
	if err != nil {
		return err
	}
	for _, d := range []string{mapsDir, progsDir, linksDir, jailsDir} {
		if err := os.Mkdir(l.pin.sub(d), 0o700); err != nil {
			return err
		}
	}
	for name, fields := range mps {
		m := fields[0].Interface().(*ebpf.Map)
		if err := m.Pin(l.pin.sub(mapsDir, name)); err != nil {
			return fmt.Errorf("pin map %s: %w", name, err)
		}
	}
	for name, fields := range progs {
		p := fields[0].Interface().(*ebpf.Program)
		if p == nil {
			continue // not loaded on this kernel (Missing); the stamp says so
		}
		if err := p.Pin(l.pin.sub(progsDir, name)); err != nil {
			return fmt.Errorf("pin program %s: %w", name, err)
		}
	}
	global := l.globalLinks()
	for i, lk := range global {
		if err := lk.Pin(l.pin.sub(linksDir, globalLinkName(i))); err != nil {
			return fmt.Errorf("pin global link %d: %w", i, err)
		}
	}
	s := stamp{build: buildHash(), layout: pinLayout, globalLinks: uint32(len(global))}
	if l.unixErr != nil {
		s.flags |= stampUnixMissing
	}
	if l.lsm.err != nil {
		s.flags |= stampLSMMissing
	}
	return writeStamp(l.pin.sub(stampPin), s)
}

func globalLinkName(i int) string { return fmt.Sprintf("%02d", i) }

// Cleanup removes everything a pinned loader pinned under dir: jails'
// links (detaching them), global links, programs, maps and the directory
// itself. A missing dir is not an error, so it can run any number of times.
// It refuses while a loader holds dir (a running daemon must stop first),
// and a dir that is not inside a bpffs mount.
func Cleanup(dir string) error {
	pd, err := openPinDir(dir, false, nil)
	if err != nil || pd == nil {
		return err
	}
	defer pd.unlock()
	if err := removePins(pd.path); err != nil {
		return err
	}
	if err := os.Remove(pd.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove pin directory: %w", err)
	}
	return nil
}

// removePins removes the contents of a pin directory. The stamp goes first,
// so that an interrupted removal reads as incomplete; jails go before the
// global objects. A pin's object is freed when nothing else holds it.
func removePins(dir string) error {
	known := []string{stampPin, jailsDir, linksDir, progsDir, mapsDir}
	var errs []error
	for _, name := range known {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			errs = append(errs, fmt.Errorf("remove pins: %w", err))
		}
	}
	// Anything else in the directory is not from this layout; it goes too.
	ents, err := os.ReadDir(dir)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("read pin directory: %w", err))...)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, fmt.Errorf("remove pins: %w", err))
		}
	}
	return errors.Join(errs...)
}
