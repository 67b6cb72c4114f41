package features

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Canonical mount points of the pseudo filesystems mcpjail relies on.
const (
	BPFFSPath      = "/sys/fs/bpf"
	TraceFSPath    = "/sys/kernel/tracing"
	SecurityFSPath = "/sys/kernel/security"
)

// Mount is one line of /proc/self/mountinfo (see proc(5)).
type Mount struct {
	// Point is where the filesystem is mounted, with octal escapes decoded.
	Point string
	// Root is the directory of the filesystem that is mounted at Point; it is
	// not "/" for bind mounts of a sub-tree (a cgroup namespace, a container).
	Root         string
	FSType       string
	Source       string
	SuperOptions []string
}

// ParseMountInfo parses the content of /proc/<pid>/mountinfo. A malformed line
// is an error: a silently skipped line could hide a cgroup hierarchy.
func ParseMountInfo(data []byte) ([]Mount, error) {
	var mounts []Mount
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		m, err := parseMountInfoLine(string(line))
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: %w", i+1, err)
		}
		mounts = append(mounts, m)
	}
	return mounts, nil
}

// parseMountInfoLine splits "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3
// /dev/root rw,errors=continue": six fixed fields, optional fields up to "-",
// then filesystem type, source and super options.
func parseMountInfoLine(line string) (Mount, error) {
	fields := strings.Fields(line)
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if len(fields) < 6 || sep < 0 || len(fields) < sep+3 {
		return Mount{}, fmt.Errorf("malformed entry %q", line)
	}
	root, err := unescapeMountField(fields[3])
	if err != nil {
		return Mount{}, fmt.Errorf("root of %q: %w", line, err)
	}
	point, err := unescapeMountField(fields[4])
	if err != nil {
		return Mount{}, fmt.Errorf("mount point of %q: %w", line, err)
	}
	source, err := unescapeMountField(fields[sep+2])
	if err != nil {
		return Mount{}, fmt.Errorf("source of %q: %w", line, err)
	}
	var superOpts []string
	if len(fields) > sep+3 {
		superOpts = strings.Split(fields[sep+3], ",")
	}
	return Mount{
		Point:        point,
		Root:         root,
		FSType:       fields[sep+1],
		Source:       source,
		SuperOptions: superOpts,
	}, nil
}

// unescapeMountField decodes the kernel's octal escapes (\040 for a space,
// \011 tab, \012 newline, \134 backslash) in a mountinfo path field.
func unescapeMountField(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+4 > len(s) {
			return "", fmt.Errorf("truncated escape in %q", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		b.WriteByte(byte(v))
		i += 3
	}
	return b.String(), nil
}

// PseudoFS says whether the pseudo filesystems mcpjail uses are mounted at
// their canonical places.
type PseudoFS struct {
	BPFFS      bool `json:"bpffs"`
	TraceFS    bool `json:"tracefs"`
	SecurityFS bool `json:"securityfs"`
	// Errors holds failures to tell (a missing directory is "not mounted",
	// not an error).
	Errors []string `json:"errors,omitempty"`
}

// ProbePseudoFS reports which of bpffs, tracefs and securityfs are mounted. It
// only looks: mounting is for EnsureBPFFS and EnsureTraceFS.
func ProbePseudoFS() PseudoFS {
	var p PseudoFS
	check := func(path string, magic int64, dst *bool) {
		ok, err := isMountedFS(path, magic)
		if err != nil {
			p.Errors = append(p.Errors, err.Error())
		}
		*dst = ok
	}
	check(BPFFSPath, unix.BPF_FS_MAGIC, &p.BPFFS)
	check(TraceFSPath, unix.TRACEFS_MAGIC, &p.TraceFS)
	check(SecurityFSPath, unix.SECURITYFS_MAGIC, &p.SecurityFS)
	return p
}

// isMountedFS reports whether the filesystem holding path has the given magic,
// which for a pseudo filesystem's mount point means it is mounted there.
func isMountedFS(path string, magic int64) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return int64(st.Type) == magic, nil
}

// EnsureBPFFS mounts bpffs at /sys/fs/bpf unless it is already there, and
// reports whether it mounted it so the caller can say so. The mount is
// root-only (mode 0700) since pinned maps hold the policy.
func EnsureBPFFS() (mounted bool, err error) {
	return ensureMounted(BPFFSPath, "bpf", unix.BPF_FS_MAGIC, "mode=0700")
}

// EnsureTraceFS mounts tracefs at /sys/kernel/tracing unless it is already
// there, and reports whether it mounted it. Tracepoint attachment needs it to
// look up event ids.
func EnsureTraceFS() (mounted bool, err error) {
	return ensureMounted(TraceFSPath, "tracefs", unix.TRACEFS_MAGIC, "")
}

// ensureMounted mounts fstype at path unless it is already there. Two
// processes racing between the check and the mount would stack two instances;
// callers that share pinned objects (run and the daemon) must serialize.
func ensureMounted(path, fstype string, magic int64, data string) (bool, error) {
	ok, err := isMountedFS(path, magic)
	if err != nil {
		return false, err
	}
	if ok {
		return false, nil
	}
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := unix.Mount(fstype, path, fstype, flags, data); err != nil {
		// Another mcpjail may have won the race; that is success, not ours.
		if ok, statErr := isMountedFS(path, magic); statErr == nil && ok {
			return false, nil
		}
		return false, fmt.Errorf("mount %s at %s: %w", fstype, path, err)
	}
	return true, nil
}
