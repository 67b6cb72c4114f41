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

// RemoveDelegateLeaf removes the leaf a stopped supervisor moved into, when
// the caller runs where that supervisor started. A leaf still holding
// processes is an error; a missing one is not.
func RemoveDelegateLeaf(leaf string) error {
	if err := validateName(leaf); err != nil {
		return err
	}
	l, err := discoverLayout(DetectMode())
	if err != nil {
		return fmt.Errorf("remove delegate leaf: %w", err)
	}
	if l.v2Mount == "" || l.v2Own == l.v2Mount {
		return nil
	}
	dir := filepath.Join(l.v2Own, leaf)
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove delegate leaf %s: %w", dir, err)
	}
	return nil
}
