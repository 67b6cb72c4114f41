package bpf

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/profiles"
)

// DeniedByProfile reports whether path, as a refused open event carries it,
// lies under one of p's filesystem.deny paths: the test for
// on_violation.file kill. A relative path is taken relative to dir (the
// task's cwd or the open's directory fd, see OpenDir).
//
// The match is lexical, on the cleaned absolute path: ".." is resolved by
// name and symlinks are not followed (the jailed task's view of the
// filesystem may not be the caller's). The kernel side cannot do better
// robustly, which is why this runs in user space. When a relative path
// cannot be made absolute (dir unknown or relative), the answer is true:
// not being able to tell is treated as a violation (fail closed).
func DeniedByProfile(p *profiles.Policy, dir, path string) bool {
	if p == nil || len(p.Filesystem.Deny) == 0 {
		return false
	}
	if !filepath.IsAbs(path) {
		if !filepath.IsAbs(dir) {
			return true
		}
		path = filepath.Join(dir, path)
	}
	path = filepath.Clean(path)
	for _, d := range p.Filesystem.Deny {
		d = filepath.Clean(d)
		if path == d || d == "/" || strings.HasPrefix(path, d+"/") {
			return true
		}
	}
	return false
}

// OpenDir is the directory a relative path of an open event was resolved
// against: the task's cwd for unix.AT_FDCWD, else the directory fd, both
// read from /proc. It is a best effort: the answer is for the moment of the
// call, and an error once the task is gone (pass "" to DeniedByProfile then).
func OpenDir(pid, dirFD int) (string, error) {
	link := "/proc/" + strconv.Itoa(pid) + "/cwd"
	if dirFD != unix.AT_FDCWD {
		if dirFD < 0 {
			return "", fmt.Errorf("directory fd %d of pid %d: not a descriptor", dirFD, pid)
		}
		link = "/proc/" + strconv.Itoa(pid) + "/fd/" + strconv.Itoa(dirFD)
	}
	dir, err := os.Readlink(link)
	if err != nil {
		return "", fmt.Errorf("directory of pid %d's open: %w", pid, err)
	}
	return dir, nil
}
