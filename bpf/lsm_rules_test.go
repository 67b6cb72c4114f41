package bpf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/profiles"
)

// fakeIdentify names files by a table; a path not in it does not exist.
func fakeIdentify(files map[string]fileID, broken string) identifyFunc {
	return func(p string) (fileID, error) {
		if p == broken {
			return fileID{}, &fs.PathError{Op: "statx", Path: p, Err: unix.EACCES}
		}
		id, ok := files[p]
		if !ok {
			return fileID{}, &fs.PathError{Op: "statx", Path: p, Err: fs.ErrNotExist}
		}
		return id, nil
	}
}

func TestCompileFSRules(t *testing.T) {
	files := map[string]fileID{
		"/usr":           {dev: 8<<20 | 1, ino: 10},
		"/usr/bin/node":  {dev: 8<<20 | 1, ino: 11},
		"/work":          {dev: 0<<20 | 40, ino: 2},
		"/work/.ssh":     {dev: 0<<20 | 40, ino: 3},
		"/srv/alias":     {dev: 8<<20 | 1, ino: 10}, // a symlink to /usr: the same file
		"/etc/resolv.cf": {dev: 8<<20 | 1, ino: 99},
	}
	f := profiles.Filesystem{
		Read:  []string{"/usr", "/etc/resolv.cf", "/missing"},
		Write: []string{"/work"},
		Exec:  []string{"/usr/bin/node", "/srv/alias"},
		Deny:  []string{"/work/.ssh", "/home/u/.aws"},
	}
	rules, skipped, err := compileFSRules(7, f, fakeIdentify(files, ""))
	if err != nil {
		t.Fatal(err)
	}
	want := []fsRule{
		{lsmFsKey{Policy: 7, Dev: 40, Ino: 2}, fsRead | fsWrite},
		{lsmFsKey{Policy: 7, Dev: 40, Ino: 3}, fsDeny},
		{lsmFsKey{Policy: 7, Dev: 8<<20 | 1, Ino: 10}, fsRead | fsExec}, // read and exec (through the alias) merged
		{lsmFsKey{Policy: 7, Dev: 8<<20 | 1, Ino: 11}, fsRead | fsExec},
		{lsmFsKey{Policy: 7, Dev: 8<<20 | 1, Ino: 99}, fsRead},
	}
	if !slices.Equal(rules, want) {
		t.Errorf("rules\n got %+v\nwant %+v", rules, want)
	}
	if !slices.Equal(skipped, []string{"/missing", "/home/u/.aws"}) {
		t.Errorf("skipped %v", skipped)
	}

	// Failing closed: a path that cannot be identified refuses the policy.
	_, _, err = compileFSRules(7, f, fakeIdentify(files, "/work"))
	if err == nil || !strings.Contains(err.Error(), "filesystem.write /work") || !errors.Is(err, unix.EACCES) {
		t.Errorf("unidentifiable path: err = %v", err)
	}

	// More files than the map holds is refused, not truncated.
	big := map[string]fileID{}
	var many []string
	for i := range MaxFSRules + 1 {
		p := fmt.Sprintf("/f%d", i)
		big[p] = fileID{dev: 1, ino: uint64(i + 1)}
		many = append(many, p)
	}
	if _, _, err := compileFSRules(1, profiles.Filesystem{Read: many}, fakeIdentify(big, "")); err == nil {
		t.Error("a policy over MaxFSRules was accepted")
	}
}

func TestParseMountinfoDevs(t *testing.T) {
	table := "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n" +
		"35 22 0:32 / /tmp rw shared:2 - tmpfs tmpfs rw\n" +
		"40 22 259:65537 /sub /srv rw - btrfs /dev/nvme0n1p1 rw\n"
	devs, err := parseMountinfoDevs(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]uint32{22: 8<<20 | 1, 35: 32, 40: 259<<20 | 65537}
	for id, dev := range want {
		if devs[id] != dev {
			t.Errorf("mount %d: dev %#x, want %#x", id, devs[id], dev)
		}
	}
	for _, bad := range []string{"22 1\n", "x 1 8:1 / /\n", "22 1 81 / /\n", "22 1 8:x / /\n", "22 1 4096:1 / /\n"} {
		if _, err := parseMountinfoDevs(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestHostIdentifier: the identity of a real file is its inode and the
// device the mount table gives for its mount.
func TestHostIdentifier(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/f"
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(file, dir+"/link"); err != nil {
		t.Fatal(err)
	}
	identify, err := hostIdentifier()
	if err != nil {
		t.Fatal(err)
	}
	id, err := identify(file)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil {
		t.Fatal(err)
	}
	if id.ino != st.Ino {
		t.Errorf("inode %d, stat says %d", id.ino, st.Ino)
	}
	viaLink, err := identify(dir + "/link")
	if err != nil || viaLink != id {
		t.Errorf("through a symlink: %+v, %v; want %+v", viaLink, err, id)
	}
	if _, err := identify(dir + "/none"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing path: err = %v, want ErrNotExist", err)
	}
}
