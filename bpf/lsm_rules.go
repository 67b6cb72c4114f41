package bpf

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/profiles"
)

// fileID is how the BPF-LSM hooks know a file: its superblock's dev_t as the
// kernel encodes it (major << 20 | minor) and its inode number.
type fileID struct {
	dev uint32
	ino uint64
}

// fsRule is one entry of the filesystem rule map.
type fsRule struct {
	key   lsmFsKey
	value uint8 // fs* bits
}

// identifyFunc finds a path's fileID, following symlinks; an error wrapping
// fs.ErrNotExist means there is nothing there (yet).
type identifyFunc func(path string) (fileID, error)

// compileFSRules keys every path of the policy's filesystem section by the
// file it names now, with the rights it grants: read, write (implies read),
// exec (implies read), deny. Paths naming the same file share one entry with
// the union of their bits. A path that does not exist gets no entry (it
// names no file; Landlock has the same limit) and is returned in skipped.
// Any other failure to identify a path refuses the policy.
func compileFSRules(policyID uint32, f profiles.Filesystem, identify identifyFunc) (rules []fsRule, skipped []string, err error) {
	bits := map[fileID]uint8{}
	lists := []struct {
		what  string
		paths []string
		bits  uint8
	}{
		{"filesystem.read", f.Read, fsRead},
		{"filesystem.write", f.Write, fsRead | fsWrite},
		{"filesystem.exec", f.Exec, fsRead | fsExec},
		{"filesystem.deny", f.Deny, fsDeny},
	}
	for _, l := range lists {
		for _, p := range l.paths {
			id, err := identify(p)
			if errors.Is(err, fs.ErrNotExist) {
				skipped = append(skipped, p)
				continue
			}
			if err != nil {
				return nil, nil, fmt.Errorf("%s %s: %w", l.what, p, err)
			}
			bits[id] |= l.bits
		}
	}
	if len(bits) > MaxFSRules {
		return nil, nil, fmt.Errorf("the filesystem section names %d files; the BPF-LSM rule map holds %d", len(bits), MaxFSRules)
	}
	for id, b := range bits {
		rules = append(rules, fsRule{key: lsmFsKey{Policy: policyID, Dev: id.dev, Ino: id.ino}, value: b})
	}
	slices.SortFunc(rules, func(a, b fsRule) int {
		return cmp.Or(cmp.Compare(a.key.Dev, b.key.Dev), cmp.Compare(a.key.Ino, b.key.Ino))
	})
	return rules, skipped, nil
}

// kernelDev encodes a device number the way the kernel's dev_t holds it
// (MKDEV), which is not stat(2)'s encoding.
func kernelDev(major, minor uint32) uint32 { return major<<20 | minor }

// hostIdentifier identifies paths on this host. The device is the mount's
// superblock device from /proc/self/mountinfo (what d_sb->s_dev holds),
// found by statx's mount id: stat's st_dev is not that on btrfs subvolumes.
func hostIdentifier() (identifyFunc, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	defer f.Close()
	devs, err := parseMountinfoDevs(f)
	if err != nil {
		return nil, err
	}
	return func(path string) (fileID, error) {
		var sx unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_INO|unix.STATX_MNT_ID, &sx); err != nil {
			return fileID{}, &fs.PathError{Op: "statx", Path: path, Err: err}
		}
		if sx.Mask&unix.STATX_MNT_ID != 0 {
			if dev, ok := devs[sx.Mnt_id]; ok {
				return fileID{dev: dev, ino: sx.Ino}, nil
			}
			// Mounted after the table was read: stat's device is right
			// everywhere but on btrfs subvolumes.
		}
		return fileID{dev: kernelDev(sx.Dev_major, sx.Dev_minor), ino: sx.Ino}, nil
	}, nil
}

// parseMountinfoDevs maps mount ids to kernel dev_t from a mountinfo table
// ("36 35 98:0 /mnt1 /mnt2 ..."; proc(5)).
func parseMountinfoDevs(r io.Reader) (map[uint64]uint32, error) {
	devs := map[uint64]uint32{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			return nil, fmt.Errorf("mountinfo line %q: too few fields", sc.Text())
		}
		id, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %q: mount id: %w", sc.Text(), err)
		}
		majText, minText, ok := strings.Cut(fields[2], ":")
		if !ok {
			return nil, fmt.Errorf("mountinfo line %q: no major:minor", sc.Text())
		}
		major, err1 := strconv.ParseUint(majText, 10, 12)
		minor, err2 := strconv.ParseUint(minText, 10, 20)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("mountinfo line %q: device: %w", sc.Text(), err)
		}
		devs[id] = kernelDev(uint32(major), uint32(minor))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	return devs, nil
}
