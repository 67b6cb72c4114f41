package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// maxKillRounds bounds the list-and-signal loop; a round only repeats
	// when it found pids it had not signalled yet (children forked meanwhile).
	maxKillRounds = 64
	// freezeWait bounds the wait for a v1 freezer to report FROZEN.
	freezeWait = time.Second
)

// Add puts pid into every directory of the jail: the v2 one first (identity
// and cgroup.kill coverage; a no-op when clone3 already placed it there), then
// each v1 hierarchy.
func (g *Group) Add(pid int) error {
	if g.err != nil {
		return g.err
	}
	if pid <= 0 {
		return fmt.Errorf("add pid %d to cgroup: invalid pid", pid)
	}
	for _, d := range g.Paths() {
		if err := writeFile(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("add pid %d to cgroup: %w", pid, err)
		}
	}
	return nil
}

// Procs lists the pids currently in the jail, the union over its
// hierarchies (sub-cgroups included), sorted.
func (g *Group) Procs() ([]int, error) {
	if g.err != nil {
		return nil, g.err
	}
	where, err := g.procs()
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(where))
	for pid := range where {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	return pids, nil
}

// procs maps each pid in the jail to the cgroup.procs file that listed it.
// A directory that no longer exists holds nothing.
func (g *Group) procs() (map[int]string, error) {
	where := map[int]string{}
	for _, root := range g.Paths() {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil // removed meanwhile
				}
				return err
			}
			if !d.IsDir() {
				return nil
			}
			file := filepath.Join(p, "cgroup.procs")
			pids, err := readPids(file)
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			for _, pid := range pids {
				where[pid] = file
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list processes in cgroup %s: %w", root, err)
		}
	}
	return where, nil
}

// Kill sends SIGKILL to everything in the jail. With a v2 cgroup.kill (all of
// the jail's processes are in the v2 group, in hybrid mode too) the kernel
// does it atomically, forks included. Then, and in any case without
// cgroup.kill, every pid still listed in any hierarchy is killed one by one,
// with the v1 freezer stopping forks meanwhile when the jail has one. Kill
// does not wait for the processes to exit; Remove does.
func (g *Group) Kill() error {
	if g.err != nil {
		return g.err
	}
	var errs []error
	killed := false
	if g.v2 != "" {
		err := writeFile(filepath.Join(g.v2, "cgroup.kill"), "1")
		switch {
		case err == nil:
			killed = true
		case !errors.Is(err, fs.ErrNotExist): // no cgroup.kill (kernel < 5.14) or already removed
			errs = append(errs, fmt.Errorf("kill cgroup: %w", err))
		}
	}
	errs = append(errs, g.sweep(!killed))
	return errors.Join(errs...)
}

// sweep kills, pid by pid, every process the jail still lists. freeze asks
// for the v1 freezer first so that nothing forks between listing and
// killing; it is skipped after cgroup.kill, which already covered forks.
func (g *Group) sweep(freeze bool) (err error) {
	var errs []error
	if fz := g.v1[ctrlFreezer]; freeze && fz != "" {
		if err := freezeV1(fz); err != nil {
			errs = append(errs, err)
		}
		defer func() {
			// Frozen tasks die of the pending SIGKILL once thawed.
			if terr := writeFile(filepath.Join(fz, "freezer.state"), "THAWED"); terr != nil && !errors.Is(terr, fs.ErrNotExist) {
				err = errors.Join(err, fmt.Errorf("thaw cgroup: %w", terr))
			}
		}()
	}
	signalled := map[int]bool{}
	for range maxKillRounds {
		where, err := g.procs()
		if err != nil {
			errs = append(errs, err)
			break
		}
		fresh := 0
		for pid, file := range where {
			if signalled[pid] {
				continue
			}
			fresh++
			signalled[pid] = true
			if err := killListed(pid, file); err != nil {
				errs = append(errs, err)
			}
		}
		if fresh == 0 {
			break
		}
	}
	return errors.Join(errs...)
}

// killListed sends SIGKILL to pid, which file (a cgroup.procs) listed. The
// pid is pinned with a pidfd and then checked to still be listed, so a pid
// that exited and was reused by a process outside the jail is never hit.
func killListed(pid int, file string) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil // already gone
	}
	if errors.Is(err, unix.ENOSYS) {
		// Kernels before 5.3: the kill follows the listing closely, and the
		// freezer (when present) keeps the pid alive in between.
		return ignoreESRCH(unix.Kill(pid, unix.SIGKILL), pid)
	}
	if err != nil {
		return fmt.Errorf("kill pid %d: pidfd_open: %w", pid, err)
	}
	defer unix.Close(fd)
	pids, err := readPids(file)
	if err != nil || !slices.Contains(pids, pid) {
		return nil // left the jail or its cgroup is gone: not ours to kill
	}
	return ignoreESRCH(unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0), pid)
}

func ignoreESRCH(err error, pid int) error {
	if err == nil || errors.Is(err, unix.ESRCH) {
		return nil
	}
	return fmt.Errorf("kill pid %d: %w", pid, err)
}

// freezeV1 asks the v1 freezer to freeze dir and waits, bounded, until it
// reports FROZEN. Not reaching it is not an error: the kill loop still runs.
func freezeV1(dir string) error {
	state := filepath.Join(dir, "freezer.state")
	if err := writeFile(state, "FROZEN"); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("freeze cgroup: %w", err)
	}
	deadline := time.Now().Add(freezeWait)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(state)
		if err != nil || string(bytes.TrimSpace(b)) == "FROZEN" {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// readPids reads a cgroup.procs file.
func readPids(path string) ([]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pids, err := parsePids(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return pids, nil
}

// parsePids parses one decimal pid a line.
func parsePids(r io.Reader) ([]int, error) {
	var pids []int
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		pid, err := strconv.Atoi(string(line))
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("bad pid %q", line)
		}
		pids = append(pids, pid)
	}
	return pids, sc.Err()
}
