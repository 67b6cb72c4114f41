package cgroup

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// JailOf says whether process pid is inside a jail: in any hierarchy, its
// cgroup lies at or beneath <somewhere>/mcpjail/<name>, where every jail,
// standalone or the daemon's, is created. It returns that jail's cgroup path
// (relative to the hierarchy's root) or "". A jailed process cannot move
// itself out of its cgroup, so the answer holds for as long as it lives.
func JailOf(pid int) (string, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", fmt.Errorf("cgroups of pid %d: %w", pid, err)
	}
	defer f.Close()
	return jailIn(f)
}

// jailIn reads /proc/<pid>/cgroup ("hierarchy-id:controllers:path" lines).
func jailIn(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), ":", 3)
		if len(fields) != 3 {
			return "", fmt.Errorf("unreadable cgroup line %q", sc.Text())
		}
		parts := strings.Split(strings.Trim(fields[2], "/"), "/")
		for i := 0; i+1 < len(parts); i++ {
			if parts[i] == parentName && parts[i+1] != "" {
				return "/" + strings.Join(parts[:i+2], "/"), nil
			}
		}
	}
	return "", sc.Err()
}
