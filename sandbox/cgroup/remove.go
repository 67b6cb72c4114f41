package cgroup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// removePoll is how often Remove looks again while the jail empties.
const removePoll = 10 * time.Millisecond

// Remove kills the jail, waits until it is empty (bounded by ctx), and
// removes its directories, sub-cgroups included. The mcpjail parent stays:
// other jails share it. A group that is already gone is removed
// successfully, so the launcher and its cleanup guard may both call Remove.
func (g *Group) Remove(ctx context.Context) error {
	if g.err != nil {
		return g.err
	}
	var last error
	for {
		pids, err := g.Procs()
		switch {
		case err != nil:
			last = err
		case len(pids) > 0:
			last = fmt.Errorf("%d process(es) still inside, pids %v", len(pids), pids[:min(len(pids), 8)])
			if kerr := g.Kill(); kerr != nil {
				last = errors.Join(last, kerr)
			}
		default:
			err := g.rmdirAll()
			if err == nil {
				return nil
			}
			if !errors.Is(err, unix.EBUSY) { // EBUSY: a process got in meanwhile
				return fmt.Errorf("remove cgroup: %w", err)
			}
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove cgroup %v: %w: %w", g.Paths(), ctx.Err(), last)
		case <-time.After(removePoll):
		}
	}
}

// rmdirAll removes every directory of the jail, deepest first. Directories
// already gone are skipped.
func (g *Group) rmdirAll() error {
	for _, root := range g.Paths() {
		var dirs []string
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("walk %s: %w", root, err)
		}
		for _, d := range slices.Backward(dirs) { // children come after their parent
			if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("rmdir %s: %w", d, err)
			}
		}
	}
	return nil
}

// OOMKills reports how many processes of the jail the kernel OOM-killed:
// oom_kill of memory.oom_control (v1) or memory.events (v2).
func (g *Group) OOMKills() (uint64, error) {
	return g.counter(ctrlMemory, "memory.oom_control", "memory.events", "oom_kill")
}

// counter reads key from a "key value" file of controller ctrl: v1File in
// its v1 hierarchy, or else v2File in the v2 directory.
func (g *Group) counter(ctrl, v1File, v2File, key string) (uint64, error) {
	if g.err != nil {
		return 0, g.err
	}
	if d := g.v1[ctrl]; d != "" {
		return readKeyed(filepath.Join(d, v1File), key)
	}
	if g.v2 != "" && exists(filepath.Join(g.v2, v2File)) {
		return readKeyed(filepath.Join(g.v2, v2File), key)
	}
	return 0, fmt.Errorf("%s of cgroup %v: no %s controller", key, g.Paths(), ctrl)
}

func readKeyed(path, key string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	v, err := parseKeyed(f, key)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return v, nil
}

// parseKeyed returns the value of key in a cgroup "key value" file such as
// memory.events.
func parseKeyed(r io.Reader, key string) (uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok || k != key {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bad %s value %q", key, v)
		}
		return n, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s entry", key)
}

// RemoveStale removes jails left behind by runs whose mcpjail and cleanup
// guard both died: jail directories under the caller's <own>/mcpjail/ that
// hold no process in any hierarchy and are older than minAge. minAge
// protects a jail another mcpjail has just created and not filled yet (a
// minute is ample). Jails with processes are left alone: their owner may be
// alive. It returns the directories it removed.
func RemoveStale(minAge time.Duration) ([]string, error) {
	l, err := discoverLayout(DetectMode())
	if err != nil {
		return nil, fmt.Errorf("remove stale cgroups: %w", err)
	}
	return removeStale(l, minAge, func(string) bool { return true })
}

// removeStale is RemoveStale limited to the names match accepts, so tests do
// not touch jails of concurrently running tests.
func removeStale(l *layout, minAge time.Duration, match func(name string) bool) ([]string, error) {
	parents := map[string]string{} // controller ("" for v2) → mcpjail parent
	if l.v2Mount != "" {
		parents[""] = filepath.Join(l.v2Own, parentName)
	}
	for c, h := range l.v1 {
		parents[c] = h.dir(filepath.Join(h.own, parentName))
	}
	names := map[string]bool{}
	for _, p := range parents {
		entries, err := os.ReadDir(p)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove stale cgroups: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() && validateName(e.Name()) == nil && match(e.Name()) {
				names[e.Name()] = true
			}
		}
	}
	var removed []string
	var errs []error
	cutoff := time.Now().Add(-minAge)
	for _, name := range slices.Sorted(maps.Keys(names)) {
		g := &Group{mode: l.mode, v1: map[string]string{}}
		young := false
		for c, p := range parents {
			dir := filepath.Join(p, name)
			fi, err := os.Stat(dir)
			if err != nil {
				continue
			}
			young = young || fi.ModTime().After(cutoff)
			if c == "" {
				g.v2 = dir
			} else {
				g.v1[c] = dir
			}
		}
		if pids, err := g.Procs(); young || err != nil || len(pids) > 0 {
			continue
		}
		if err := g.rmdirAll(); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, g.Paths()...)
	}
	return removed, errors.Join(errs...)
}

// MemoryCurrent is the jail's memory use in bytes: memory.usage_in_bytes
// (v1) or memory.current (v2).
func (g *Group) MemoryCurrent() (uint64, error) {
	if g.err != nil {
		return 0, g.err
	}
	file := ""
	if d := g.v1[ctrlMemory]; d != "" {
		file = filepath.Join(d, "memory.usage_in_bytes")
	} else if g.v2 != "" {
		file = filepath.Join(g.v2, "memory.current")
	}
	if file == "" {
		return 0, fmt.Errorf("memory use of cgroup %v: no memory controller", g.Paths())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("memory use: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("memory use: %s: %w", file, err)
	}
	return n, nil
}
