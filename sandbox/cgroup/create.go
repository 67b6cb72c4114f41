package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Create makes the jail's cgroup beneath the caller's own cgroup in every
// hierarchy it can use, as <own>/mcpjail/<name>, and applies limits. It
// returns the limits it could NOT apply (for example "pids: no pids controller
// is mounted") rather than failing, so the caller can fail closed or accept a
// degraded jail; any other error is fatal and leaves nothing behind. The
// jail's directories must not exist yet: an existing name is an error.
func Create(name string, limits Limits) (*Group, []string, error) {
	if err := validateName(name); err != nil {
		return nil, nil, err
	}
	if err := validateLimits(limits); err != nil {
		return nil, nil, err
	}
	l, err := discoverLayout(DetectMode())
	if err != nil {
		return nil, nil, fmt.Errorf("create cgroup %s: %w", name, err)
	}
	return create(l, name, limits)
}

// create does the work of Create on a discovered layout; tests hand it a
// layout without its v2 part to exercise the pure-v1 path on a hybrid host.
func create(l *layout, name string, limits Limits) (_ *Group, missing []string, err error) {
	g := &Group{mode: l.mode, v1: map[string]string{}}
	var made []string // jail directories this call created, in order
	defer func() {
		if err != nil {
			for _, d := range slices.Backward(made) {
				_ = unix.Rmdir(d) // empty and never populated: no process was added yet
			}
		}
	}()
	mkdirJail := func(dir string) error {
		if slices.Contains(made, dir) { // two controllers mounted together
			return nil
		}
		if err := mkdirShared(filepath.Dir(dir)); err != nil {
			return err
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("create cgroup %s: already exists", dir)
			}
			return fmt.Errorf("create cgroup: %w", err)
		}
		made = append(made, dir)
		return nil
	}

	// Every limit goes to its v1 hierarchy when one is mounted (hybrid, v1),
	// else to v2. v1 directories are made for all three controllers, limited
	// or not: they give accounting, and in pure v1 they are how Procs and Kill
	// find the jail's processes.
	var v1Ctrls, v2Want []string
	for _, c := range []string{ctrlMemory, ctrlPids, ctrlCPU} {
		switch _, inV1 := l.v1[c]; {
		case inV1:
			v1Ctrls = append(v1Ctrls, c)
		case !requested(limits, c):
		case l.v2Mount != "":
			v2Want = append(v2Want, c)
		default:
			missing = append(missing, fmt.Sprintf("%s: no %s controller is mounted", c, c))
		}
	}

	if l.v2Mount != "" {
		parent := filepath.Join(l.v2Own, parentName)
		if err := mkdirShared(parent); err != nil {
			return nil, nil, err
		}
		enabled, notEnabled := enableV2Controllers([]string{l.v2Own, parent}, v2Want)
		missing = append(missing, notEnabled...)
		g.v2 = filepath.Join(parent, name)
		if err := mkdirJail(g.v2); err != nil {
			return nil, nil, err
		}
		if g.id, err = inodeOf(g.v2); err != nil {
			return nil, nil, err
		}
		for _, c := range enabled {
			if err := applyV2(l.v2Mount, g.v2, c, limits); err != nil {
				return nil, nil, err
			}
		}
	}

	// The v1 freezer is only needed to stop forks while killing when there
	// is no v2 cgroup.kill (pure v1, or kernels before 5.14).
	if _, ok := l.v1[ctrlFreezer]; ok && (g.v2 == "" || !exists(filepath.Join(g.v2, "cgroup.kill"))) {
		v1Ctrls = append(v1Ctrls, ctrlFreezer)
	}
	for _, c := range v1Ctrls {
		h := l.v1[c]
		rel := filepath.Join(h.own, parentName, name)
		g.v1[c] = h.dir(rel)
		if err := mkdirJail(g.v1[c]); err != nil {
			return nil, nil, err
		}
		if requested(limits, c) {
			if err := applyV1(h, rel, c, limits); err != nil {
				return nil, nil, err
			}
		}
	}
	if len(made) == 0 {
		return nil, nil, fmt.Errorf("create cgroup %s: no usable hierarchy in cgroup %s mode", name, l.mode)
	}
	return g, missing, nil
}

// enableV2Controllers makes each wanted controller available to the jail by
// enabling it in cgroup.subtree_control of every directory in dirs: the
// caller's own cgroup, then the mcpjail parent. Nothing above the caller's
// own cgroup is touched: those belong to whoever delegated it.
//
// The "no internal processes" rule makes the kernel refuse (EBUSY) to enable
// controllers in a non-root cgroup that holds processes, which is where an
// interactive shell usually is (/user.slice/.../session-N.scope). That is not
// worked around by moving the caller: it is reported per controller, and the
// caller decides whether to fail closed.
func enableV2Controllers(dirs, want []string) (enabled, missing []string) {
	failed := map[string]bool{}
	fail := func(c, why string) {
		failed[c] = true
		missing = append(missing, c+": "+why)
	}
	for _, dir := range dirs {
		active, errA := readFields(filepath.Join(dir, "cgroup.subtree_control"))
		avail, errB := readFields(filepath.Join(dir, "cgroup.controllers"))
		readErr := errors.Join(errA, errB)
		for _, c := range want {
			switch {
			case failed[c]:
			case readErr != nil:
				fail(c, fmt.Sprintf("cgroup v2: %v", readErr))
			case slices.Contains(active, c):
			case !slices.Contains(avail, c):
				fail(c, fmt.Sprintf("cgroup v2: the %s controller is not delegated to %s", c, dir))
			default:
				err := writeFile(filepath.Join(dir, "cgroup.subtree_control"), "+"+c)
				if errors.Is(err, unix.EBUSY) {
					fail(c, fmt.Sprintf("cgroup v2: cannot enable controllers in %s which holds processes; "+
						"run mcpjail from a cgroup it may manage (the daemon, or a systemd unit with Delegate=yes "+
						"whose processes sit in a leaf child)", dir))
				} else if err != nil {
					fail(c, fmt.Sprintf("cgroup v2: %v", err))
				}
			}
		}
	}
	for _, c := range want {
		if !failed[c] {
			enabled = append(enabled, c)
		}
	}
	return enabled, missing
}

// mkdirShared makes the mcpjail parent when it does not exist yet; other
// jails share it, so it may exist or be created concurrently.
func mkdirShared(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create cgroup parent: %w", err)
	}
	return nil
}

// writeFile writes data to an existing cgroupfs file in one write(2), as
// the kernel expects; it never creates a file.
func writeFile(path, data string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteString(data); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in the message already
		}
		return fmt.Errorf("write %q to %s: %w", data, path, err)
	}
	return nil
}

// readFields reads a whitespace-separated cgroupfs list such as
// cgroup.controllers.
func readFields(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
