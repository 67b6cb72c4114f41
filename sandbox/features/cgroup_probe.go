package features

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/containerd/cgroups/v3"
	"golang.org/x/sys/unix"
)

// ProbeCgroup reads the caller's cgroup state from /proc and cgroupfs. It only
// reads; it creates nothing.
func ProbeCgroup() (CgroupInfo, error) {
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return CgroupInfo{}, fmt.Errorf("read mount table: %w", err)
	}
	procCgroup, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return CgroupInfo{}, fmt.Errorf("read own cgroup membership: %w", err)
	}
	info, err := ParseCgroupInfo(mountinfo, procCgroup)
	if err != nil {
		return CgroupInfo{}, err
	}
	info.LibraryMode = libraryCgroupMode()
	if info.V2 != nil {
		if err := readV2Files(info.V2); err != nil {
			return info, err
		}
	}
	return info, nil
}

// readV2Files fills the controller lists and cgroup.kill from cgroupfs.
func readV2Files(h *CgroupV2Hierarchy) error {
	var err error
	if h.RootControllers, err = readWordList(path.Join(h.Mount, "cgroup.controllers")); err != nil {
		return err
	}
	if h.RootSubtreeControl, err = readWordList(path.Join(h.Mount, "cgroup.subtree_control")); err != nil {
		return err
	}
	selfDir, err := h.Dir()
	if err != nil {
		return err
	}
	if h.SelfControllers, err = readWordList(path.Join(selfDir, "cgroup.controllers")); err != nil {
		return err
	}
	// A hierarchy's root has no cgroup.kill, so look in a non-root group:
	// the caller's own, else any child of the root.
	probeDir := selfDir
	if h.Self == "/" && h.MountRoot == "/" {
		probeDir = firstSubdir(selfDir)
	}
	if probeDir != "" {
		has, err := HasKillFile(probeDir)
		if err != nil {
			return err
		}
		// Another program may remove a child of the root meanwhile: trust a
		// "no" only when the group is still there.
		if _, statErr := os.Stat(probeDir); has || statErr == nil {
			h.Kill = &has
		}
	}
	return nil
}

// HasKillFile reports whether the non-root v2 group at dir has cgroup.kill.
func HasKillFile(dir string) (bool, error) {
	_, err := os.Stat(path.Join(dir, "cgroup.kill"))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("stat cgroup.kill in %s: %w", dir, err)
	}
}

// firstSubdir returns a child directory of dir, or "" when there is none.
func firstSubdir(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	for _, e := range entries {
		if e.IsDir() {
			return path.Join(dir, e.Name())
		}
	}
	return ""
}

// readWordList reads a space-separated cgroup interface file.
func readWordList(file string) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return strings.Fields(string(data)), nil
}

// libraryCgroupMode translates containerd/cgroups' view of the host.
func libraryCgroupMode() CgroupMode {
	switch cgroups.Mode() {
	case cgroups.Unified:
		return CgroupV2
	case cgroups.Hybrid:
		return CgroupHybrid
	case cgroups.Legacy:
		return CgroupV1
	default:
		return CgroupNone
	}
}

// TempCgroupPrefix starts the name of every group the probes create, followed
// by the creating process's pid.
const TempCgroupPrefix = "mcpjail-probe-"

// createTempCgroup makes an empty v2 group under parent for attach probes and
// returns a function that removes it. No process ever joins it.
func createTempCgroup(parent string) (dir string, remove func() error, err error) {
	var nonce [4]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", nil, fmt.Errorf("name probe cgroup: %w", err)
	}
	dir = path.Join(parent, fmt.Sprintf("%s%d-%x", TempCgroupPrefix, os.Getpid(), nonce))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("create probe cgroup %s: %w", dir, err)
	}
	return dir, func() error {
		if err := unix.Rmdir(dir); err != nil {
			return fmt.Errorf("remove probe cgroup %s: %w", dir, err)
		}
		return nil
	}, nil
}

// killFileInTempCgroup answers whether non-root v2 groups have cgroup.kill
// when no existing non-root group was there to look at.
func killFileInTempCgroup(parent string) (bool, error) {
	dir, remove, err := createTempCgroup(parent)
	if err != nil {
		return false, err
	}
	has, err := HasKillFile(dir)
	return has, errors.Join(err, remove())
}
