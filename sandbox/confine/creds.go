package confine

import (
	"fmt"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"
)

// switchCreds makes the process run as c: supplementary groups first, then
// the gid, then the uid (after that, changing the others is no longer
// allowed). Go's syscall package applies each call to every thread. Leaving
// uid 0 also clears the permitted, effective and ambient sets, since
// SECBIT_KEEP_CAPS is never set.
func switchCreds(c *Creds) error {
	groups := make([]int, len(c.Groups))
	for i, g := range c.Groups {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups(%v): %w", c.Groups, err)
	}
	if err := syscall.Setresgid(int(c.GID), int(c.GID), int(c.GID)); err != nil {
		return fmt.Errorf("setresgid(%d): %w", c.GID, err)
	}
	if err := syscall.Setresuid(int(c.UID), int(c.UID), int(c.UID)); err != nil {
		return fmt.Errorf("setresuid(%d): %w", c.UID, err)
	}
	return verifyCreds(c)
}

// verifyCreds reads the identity back: real, effective and saved ids must
// all be the target, so no path back to the old identity remains.
func verifyCreds(c *Creds) error {
	ruid, euid, suid := unix.Getresuid()
	rgid, egid, sgid := unix.Getresgid()
	for _, id := range []int{ruid, euid, suid} {
		if id != int(c.UID) {
			return fmt.Errorf("uids are %d/%d/%d after setresuid(%d)", ruid, euid, suid, c.UID)
		}
	}
	for _, id := range []int{rgid, egid, sgid} {
		if id != int(c.GID) {
			return fmt.Errorf("gids are %d/%d/%d after setresgid(%d)", rgid, egid, sgid, c.GID)
		}
	}
	got, err := unix.Getgroups()
	if err != nil {
		return fmt.Errorf("getgroups: %w", err)
	}
	want := make([]int, len(c.Groups))
	for i, g := range c.Groups {
		want[i] = int(g)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(slices.Compact(got), slices.Compact(want)) {
		return fmt.Errorf("supplementary groups are %v after setgroups(%v)", got, c.Groups)
	}
	return nil
}
