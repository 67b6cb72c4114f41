package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Base is where a supervisor creates jails: the cgroups it was started in,
// captured before it moved itself into a leaf below them (Delegate).
type Base struct{ l *layout }

// Delegate prepares a long-running supervisor (the daemon, started by
// systemd with Delegate=yes) to create jails below its own cgroup. In a
// cgroup v2 hierarchy a non-root cgroup that holds processes cannot enable
// controllers for its children ("no internal processes"), so the calling
// process moves into <own>/<leaf> and jails go to <own>/mcpjail/<name>
// beside it. Nothing moves when the caller sits in the v2 root or there is
// no v2 hierarchy (v1 has no such rule).
func Delegate(leaf string) (*Base, error) {
	if err := validateName(leaf); err != nil {
		return nil, err
	}
	if leaf == parentName {
		return nil, fmt.Errorf("delegate: the leaf cannot be named %q", parentName)
	}
	l, err := discoverLayout(DetectMode())
	if err != nil {
		return nil, fmt.Errorf("delegate: %w", err)
	}
	if l.v2Mount == "" || l.v2Own == l.v2Mount {
		return &Base{l: l}, nil
	}
	dir := filepath.Join(l.v2Own, leaf)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("delegate: create leaf cgroup: %w", err)
	}
	// Every thread of the process moves with it (cgroup.procs, not tasks).
	if err := writeFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(os.Getpid())); err != nil {
		return nil, fmt.Errorf("delegate: move into %s: %w", dir, err)
	}
	return &Base{l: l}, nil
}

// CreateIn is Create below base instead of the caller's own cgroup.
func CreateIn(base *Base, name string, limits Limits) (*Group, []string, error) {
	if base == nil {
		return Create(name, limits)
	}
	if err := validateName(name); err != nil {
		return nil, nil, err
	}
	if err := validateLimits(limits); err != nil {
		return nil, nil, err
	}
	return create(base.l, name, limits)
}

// Sibling creates, or finds, the empty v2 cgroup <own>/<name> beside the
// jails' parent and the supervisor's leaf, and returns its path. Nothing is
// moved into it: it holds what must stay attached without ever running
// (bpf.Loader.KeepHooksWarm). RemoveSibling removes it.
func (b *Base) Sibling(name string) (string, error) {
	if err := validateName(name); err != nil {
		return "", err
	}
	if name == parentName {
		return "", fmt.Errorf("sibling cgroup: cannot be named %q", parentName)
	}
	if b.l.v2Mount == "" {
		return "", errors.New("sibling cgroup: no cgroup v2 hierarchy")
	}
	dir := filepath.Join(b.l.v2Own, name)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("sibling cgroup: %w", err)
	}
	procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return "", fmt.Errorf("sibling cgroup: %w", err)
	}
	if len(procs) != 0 {
		return "", fmt.Errorf("sibling cgroup %s holds processes; it must stay empty", dir)
	}
	return dir, nil
}

// RemoveDelegateLeaf removes the leaf a stopped supervisor moved into, when
// the caller runs where that supervisor started. A leaf still holding
// processes is an error; a missing one is not. A supervisor in the v2 root
// made no leaf.
func RemoveDelegateLeaf(leaf string) error {
	l, err := siblingLayout(leaf)
	if err != nil || l.v2Mount == "" || l.v2Own == l.v2Mount {
		return err
	}
	return removeSibling(l, leaf)
}

// RemoveSibling removes what Sibling made, when the caller runs where the
// supervisor that made it started. A missing one is not an error.
func RemoveSibling(name string) error {
	l, err := siblingLayout(name)
	if err != nil || l.v2Mount == "" {
		return err
	}
	return removeSibling(l, name)
}

func siblingLayout(name string) (*layout, error) {
	if err := validateName(name); err != nil {
		return nil, err
	}
	l, err := discoverLayout(DetectMode())
	if err != nil {
		return nil, fmt.Errorf("remove cgroup %s: %w", name, err)
	}
	return l, nil
}

func removeSibling(l *layout, name string) error {
	dir := filepath.Join(l.v2Own, name)
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	return nil
}
