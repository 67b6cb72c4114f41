package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// budgetAttachment is the pin name of the egress budget link (egress.go),
// which only jails with a budget have.
const budgetAttachment = "egress"

// pinLinks pins the jail's links under a pinned loader: into
// jails/<id>-new, renamed to jails/<id> once every link is in, so that a
// jail directory without a suffix is always complete.
func (j *Jail) pinLinks() error {
	dir := j.loader.pin.jailPath(j.cgroupID)
	tmp := dir + pendingSuffix
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("pin links: %w", err)
	}
	j.pinPath = tmp
	for i, lk := range j.links {
		if err := lk.Pin(filepath.Join(tmp, j.linkNames[i])); err != nil {
			return fmt.Errorf("pin %s link: %w", j.linkNames[i], err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("pin links: %w", err)
	}
	j.pinPath = dir
	return nil
}

// uncommitPins renames a complete jail directory to <id>-closing, the
// first step of Close: if the process dies before the removal is done,
// the next LoadPinned finishes it instead of finding a jail with links
// missing. A no-op without pins or for a directory not yet complete.
func (j *Jail) uncommitPins() error {
	if j.pinPath == "" || strings.HasSuffix(j.pinPath, pendingSuffix) || strings.HasSuffix(j.pinPath, closingSuffix) {
		return nil
	}
	closing := j.pinPath + closingSuffix
	if err := os.Rename(j.pinPath, closing); err != nil {
		return fmt.Errorf("unpin links: %w", err)
	}
	j.pinPath = closing
	return nil
}

// unpinLinks removes the jail's link pins, so that closing the links
// detaches them. Pins are removed by path: the links do not know the
// directory's new name.
func (j *Jail) unpinLinks() error {
	var errs []error
	for _, name := range j.linkNames {
		if err := os.Remove(filepath.Join(j.pinPath, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("unpin %s link: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// removePinDir removes the jail's (emptied) pin directory.
func (j *Jail) removePinDir() error {
	if err := os.Remove(j.pinPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove pin directory: %w", err)
	}
	j.pinPath = ""
	return nil
}

// closeDescriptors closes the jail's link descriptors without unpinning:
// the links stay attached through their pins.
func (j *Jail) closeDescriptors() error {
	var errs []error
	for _, lk := range j.links {
		if err := lk.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close link of jail (cgroup id %d): %w", j.cgroupID, err))
		}
	}
	j.links, j.linkNames = nil, nil
	return errors.Join(errs...)
}
