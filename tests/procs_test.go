package tests

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// proc is one live process found in /proc.
type proc struct {
	pid     int
	state   string // the state letter of /proc/PID/stat
	cmdline []string
}

func (p proc) String() string {
	return fmt.Sprintf("pid %d (%s) %q", p.pid, p.state, p.cmdline)
}

// procsWithArg lists the processes, zombies excluded, one of whose argv words
// is exactly marker. Tests put a unique marker in the server's argv, and
// mcpjail's own argv carries it too: after mcpjail is gone, any match is a
// leftover of the run.
func procsWithArg(marker string) []proc {
	entries, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue // gone, or a kernel thread
		}
		argv := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		found := false
		for _, a := range argv {
			found = found || a == marker
		}
		if !found {
			continue
		}
		state := procState(pid)
		if state == "Z" || state == "" {
			continue // a zombie runs nothing; it only waits to be reaped
		}
		out = append(out, proc{pid: pid, state: state, cmdline: argv})
	}
	return out
}

// procState reads the state letter from /proc/PID/stat ("" when gone).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// comm is in parentheses and may contain spaces; the state follows it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return ""
	}
	return string(b[i+2])
}

// parentPID reads the parent's pid from /proc/PID/stat (0 when gone).
func parentPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:])) // state, ppid, ...
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// waitForProcs polls until the processes carrying marker whose exe is exe
// number at least n, and returns them.
func waitForProcs(t *testing.T, marker, exe string, n int) []proc {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var match []proc
		for _, p := range procsWithArg(marker) {
			if target, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.pid)); err == nil && target == exe {
				match = append(match, p)
			}
		}
		if len(match) >= n {
			return match
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d processes of %s carrying %q, found %v", n, exe, marker, match)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cgroupDirs maps the lines of /proc/PID/cgroup to directories in this
// process's view of the cgroup filesystems, keyed by hierarchy ("" is v2).
func cgroupDirs(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, fmt.Errorf("cgroups of pid %d: %w", pid, err)
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		key := hierarchyKey(parts[1])
		if mnt, ok := mounts[key]; ok {
			out[key] = filepath.Join(mnt, parts[2])
		}
	}
	return out, nil
}

// cgroupMounts maps each mounted cgroup hierarchy (sorted controller list,
// "name=..." for named ones, "" for v2) to its mount point.
func cgroupMounts() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(tail) < 3 || fields[3] != "/" {
			continue
		}
		switch tail[0] {
		case "cgroup2":
			out[""] = fields[4]
		case "cgroup":
			var ctrls []string
			for _, opt := range strings.Split(tail[2], ",") {
				if v1Controllers[opt] || strings.HasPrefix(opt, "name=") {
					ctrls = append(ctrls, opt)
				}
			}
			out[hierarchyKey(strings.Join(ctrls, ","))] = fields[4]
		}
	}
	return out, nil
}

// v1Controllers tells controller names from other cgroup v1 mount options.
var v1Controllers = map[string]bool{
	"cpu": true, "cpuacct": true, "cpuset": true, "memory": true, "pids": true, "blkio": true,
	"devices": true, "freezer": true, "net_cls": true, "net_prio": true, "perf_event": true,
	"hugetlb": true, "rdma": true, "misc": true,
}

func hierarchyKey(controllers string) string {
	parts := strings.Split(controllers, ",")
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// jailCgroupDirs returns the cgroup directories of pid that belong to a jail
// named name: those mcpjail created beneath its own cgroup as
// <own>/mcpjail/<name>-<instance>. It fails the test when there are none.
func jailCgroupDirs(t *testing.T, pid int, name string) []string {
	t.Helper()
	theirs, err := cgroupDirs(pid)
	if err != nil {
		t.Fatal(err)
	}
	mine, err := cgroupDirs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for key, dir := range theirs {
		prefix := filepath.Join(mine[key], "mcpjail", name) + "-"
		if strings.HasPrefix(dir, prefix) {
			out = append(out, dir)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		t.Fatalf("pid %d is in no cgroup <own>/mcpjail/%s-*; its cgroups: %v", pid, name, theirs)
	}
	return out
}

// existing returns the paths of dirs that still exist.
func existing(dirs []string) []string {
	var out []string
	for _, d := range dirs {
		if _, err := os.Stat(d); err == nil {
			out = append(out, d)
		}
	}
	return out
}

// eventually polls check until it returns nothing or the deadline passes, and
// returns what check last reported. For cleanup that is asynchronous by
// design; never used to assert speed.
func eventually(deadline time.Duration, check func() []string) []string {
	end := time.Now().Add(deadline)
	for {
		left := check()
		if len(left) == 0 || time.Now().After(end) {
			return left
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// procStrings renders procs for a failure message.
func procStrings(ps []proc) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}
