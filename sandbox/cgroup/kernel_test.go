package cgroup

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The jail lies beneath the caller's own cgroup in every hierarchy, under the
// mcpjail parent, with the profile's limits written where the kernel reads them.
func TestCreateLayoutAndLimits(t *testing.T) {
	mode := requireCgroups(t)
	g := newGroup(t, Limits{MemoryBytes: 64 << 20, Pids: 16, CPUMillis: 500})
	if g.Mode() != mode {
		t.Fatalf("Mode = %s, want %s", g.Mode(), mode)
	}
	own := ownCgroups(t, "self")
	name := filepath.Base(g.Paths()[0])
	for c, dir := range g.v1 {
		want := filepath.Join("/sys/fs/cgroup", c, own[c], parentName, name)
		if dir != want {
			t.Errorf("v1 %s dir = %s, want %s", c, dir, want)
		}
	}
	switch mode {
	case ModeV1:
		if g.V2Path() != "" || g.ID() != 0 {
			t.Errorf("pure v1 group has v2 path %q, id %d", g.V2Path(), g.ID())
		}
		if _, err := g.OpenV2(); err == nil {
			t.Error("OpenV2 succeeded in pure v1")
		}
	default:
		mount := map[Mode]string{ModeV2: "/sys/fs/cgroup", ModeHybrid: "/sys/fs/cgroup/unified"}[mode]
		if want := filepath.Join(mount, own[""], parentName, name); g.V2Path() != want {
			t.Errorf("V2Path = %s, want %s", g.V2Path(), want)
		}
		checkID(t, g)
	}
	for _, p := range g.Paths() {
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			t.Errorf("jail dir %s: %v", p, err)
		}
	}

	// Where each limit must be: v1 when its hierarchy is mounted, else v2.
	files := map[string]string{}
	if d := g.v1[ctrlMemory]; d != "" {
		files[filepath.Join(d, "memory.limit_in_bytes")] = "67108864"
	} else {
		files[filepath.Join(g.v2, "memory.max")] = "67108864"
	}
	if d := g.v1[ctrlPids]; d != "" {
		files[filepath.Join(d, "pids.max")] = "16"
	} else {
		files[filepath.Join(g.v2, "pids.max")] = "16"
	}
	if d := g.v1[ctrlCPU]; d != "" {
		files[filepath.Join(d, "cpu.cfs_quota_us")] = "50000"
		files[filepath.Join(d, "cpu.cfs_period_us")] = "100000"
	} else {
		files[filepath.Join(g.v2, "cpu.max")] = "50000 100000"
	}
	for f, want := range files {
		if got := readTrim(t, f); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
}

// checkID compares ID with the v2 directory's inode and with the cgroup id
// the kernel puts in a file handle of the directory (the same id BPF sees).
func checkID(t *testing.T, g *Group) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(g.V2Path(), &st); err != nil {
		t.Fatal(err)
	}
	if g.ID() == 0 || g.ID() != st.Ino {
		t.Errorf("ID = %d, inode of %s = %d", g.ID(), g.V2Path(), st.Ino)
	}
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, g.V2Path(), 0)
	if err != nil {
		t.Fatalf("name_to_handle_at %s: %v", g.V2Path(), err)
	}
	if b := h.Bytes(); len(b) != 8 || binary.NativeEndian.Uint64(b) != g.ID() {
		t.Errorf("file handle of %s = %x, want cgroup id %d", g.V2Path(), b, g.ID())
	}
	f, err := g.OpenV2()
	if err != nil {
		t.Fatalf("OpenV2: %v", err)
	}
	f.Close()
}

// Add places a process in every hierarchy; Kill ends it and everything it
// forked with SIGKILL; Remove leaves no directory (checked by newGroup).
func TestAddKillRemove(t *testing.T) {
	requireCgroups(t)
	g := newGroup(t, Limits{})
	p := startShell(t, "sleep 1000 & sleep 1000 & wait")
	pid := p.cmd.Process.Pid
	if err := g.Add(pid); err != nil {
		t.Fatalf("Add: %v", err)
	}
	checkPlaced(t, g, strconv.Itoa(pid))
	p.open(t)
	pids := waitProcs(t, g, 3)
	if !slices.Contains(pids, pid) {
		t.Fatalf("Procs = %v, missing %d", pids, pid)
	}
	if err := g.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if ws := p.wait(t); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("shell ended with %v, want SIGKILL", ws)
	}
	removeOrFail(t, g)
	if err := g.Remove(t.Context()); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

// checkPlaced verifies with /proc/<pid>/cgroup that pid sits in every
// directory of the jail.
func checkPlaced(t *testing.T, g *Group, pid string) {
	t.Helper()
	cg := ownCgroups(t, pid)
	self := ownCgroups(t, "self")
	name := filepath.Base(g.Paths()[0])
	if g.v2 != "" {
		if want := filepath.Join(self[""], parentName, name); cg[""] != want {
			t.Errorf("pid %s v2 cgroup = %s, want %s", pid, cg[""], want)
		}
	}
	for c := range g.v1 {
		if want := filepath.Join(self[c], parentName, name); cg[c] != want {
			t.Errorf("pid %s %s cgroup = %s, want %s", pid, c, cg[c], want)
		}
	}
}

// clone3 CLONE_INTO_CGROUP through OpenV2: the child is born in the jail.
func TestCloneIntoCgroup(t *testing.T) {
	mode := requireCgroups(t)
	g := newGroup(t, Limits{Pids: 64})
	if mode == ModeV1 {
		if _, err := g.OpenV2(); err == nil {
			t.Fatal("OpenV2 succeeded in pure v1")
		}
		return
	}
	f, err := g.OpenV2()
	if err != nil {
		t.Fatalf("OpenV2: %v", err)
	}
	defer f.Close()
	p := startGated(t, &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}, "sleep", "1000")
	pid := strconv.Itoa(p.cmd.Process.Pid)
	self := ownCgroups(t, "self")
	if got, want := ownCgroups(t, pid)[""], filepath.Join(self[""], parentName, filepath.Base(g.V2Path())); got != want {
		t.Fatalf("child born in v2 cgroup %s, want %s", got, want)
	}
	if err := g.Add(p.cmd.Process.Pid); err != nil {
		t.Fatalf("Add after clone: %v", err)
	}
	checkPlaced(t, g, pid)
	removeOrFail(t, g)
	if ws := p.wait(t); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("sleep ended with %v, want SIGKILL", ws)
	}
}

// A fork beyond the pids limit fails in the kernel: the shell reports it and
// pids.events counts the refusals.
func TestPidsLimitStopsForks(t *testing.T) {
	requireCgroups(t)
	const limit = 4
	g := newGroup(t, Limits{Pids: limit})
	p := startShell(t, "i=0; while [ $i -lt 32 ]; do sleep 1000 & i=$((i+1)); done; wait")
	if err := g.Add(p.cmd.Process.Pid); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if hits, err := g.PidsLimitHits(); err != nil || hits != 0 {
		t.Fatalf("PidsLimitHits before any fork = %d, %v; want 0", hits, err)
	}
	p.open(t)
	if ws := p.wait(t); ws.ExitStatus() == 0 {
		t.Fatalf("shell forked 32 children under pids.max=%d and exited %v", limit, ws)
	}
	refused, err := g.PidsLimitHits()
	if err != nil || refused == 0 {
		t.Fatalf("pids.events max = %d, %v; want forks refused", refused, err)
	}
	if pids, err := g.Procs(); err != nil || len(pids) > limit {
		t.Fatalf("jail holds %v (%v), more than %d", pids, err, limit)
	}
}

// A process that allocates past the memory limit is OOM-killed and counted.
func TestOOMKills(t *testing.T) {
	requireCgroups(t)
	g := newGroup(t, Limits{MemoryBytes: 32 << 20})
	if n, err := g.OOMKills(); err != nil || n != 0 {
		t.Fatalf("OOMKills before = %d, %v", n, err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	hog := exec.Command(self, "-test.run=^$")
	hog.Env = append(os.Environ(), envHog+"=1")
	p := startGatedCmd(t, hog)
	if err := g.Add(p.cmd.Process.Pid); err != nil {
		t.Fatalf("Add: %v", err)
	}
	p.open(t)
	if ws := p.wait(t); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("memory hog ended with %v, want SIGKILL by the OOM killer", ws)
	}
	if n, err := g.OOMKills(); err != nil || n == 0 {
		t.Fatalf("OOMKills after = %d, %v; want at least 1", n, err)
	}
}

// An existing jail name is refused, and a Create that fails part-way
// removes what it made and nothing else.
func TestCreateRefusesExisting(t *testing.T) {
	requireCgroups(t)
	first := newGroup(t, Limits{Pids: 8})
	if _, _, err := Create(filepath.Base(first.Paths()[0]), Limits{Pids: 8}); err == nil {
		t.Fatal("Create of an existing name succeeded")
	}
	for _, p := range first.Paths() {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("failed Create touched the existing jail: %v", err)
		}
	}

	// A leftover in the last hierarchy only: Create fails there and must
	// roll back the directories it made in the others.
	name := testName(t)
	paths := first.Paths()
	leftover := filepath.Join(filepath.Dir(paths[len(paths)-1]), name)
	if err := os.Mkdir(leftover, 0o755); err != nil {
		t.Fatal(err)
	}
	defer unix.Rmdir(leftover)
	if _, _, err := Create(name, Limits{Pids: 8}); err == nil {
		t.Fatalf("Create succeeded although %s exists", leftover)
	}
	for _, p := range paths[:len(paths)-1] {
		d := filepath.Join(filepath.Dir(p), name)
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("failed Create left %s behind", d)
		}
	}
}

// The cleanup guard's path: another process, given only the Spec, kills
// and removes a group it did not create.
func TestGuardRemovesFromSpec(t *testing.T) {
	requireCgroups(t)
	g := newGroup(t, Limits{Pids: 16})
	p := startShell(t, "sleep 1000 & wait")
	if err := g.Add(p.cmd.Process.Pid); err != nil {
		t.Fatalf("Add: %v", err)
	}
	p.open(t)
	waitProcs(t, g, 2)
	spec, err := json.Marshal(g.Spec())
	if err != nil {
		t.Fatal(err)
	}
	if again := FromSpec(g.Spec()); again.ID() != g.ID() || !slices.Equal(again.Paths(), g.Paths()) {
		t.Fatalf("FromSpec(Spec) = %v id %d, want %v id %d", again.Paths(), again.ID(), g.Paths(), g.ID())
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	guard := exec.Command(self, "-test.run=^$")
	guard.Env = append(os.Environ(), envRemove+"="+string(spec))
	if out, err := guard.CombinedOutput(); err != nil {
		t.Fatalf("guard process: %v: %s", err, out)
	}
	if ws := p.wait(t); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("shell ended with %v, want SIGKILL", ws)
	}
	for _, d := range g.Paths() {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind by the guard", d)
		}
	}
}

// Killing without cgroup.kill (pure v1, kernels before 5.14): on hosts with
// v1 hierarchies the jail is created as on a pure v1 machine (no v2 part, so
// the freezer is used); on pure v2 the pid-by-pid sweep runs on the v2 group.
func TestKillWithoutCgroupKill(t *testing.T) {
	mode := requireCgroups(t)
	var g *Group
	if mode == ModeV2 {
		g = newGroup(t, Limits{})
	} else {
		l, err := discoverLayout(mode)
		if err != nil {
			t.Fatal(err)
		}
		l.mode, l.v2Mount, l.v2Own = ModeV1, "", ""
		var missing []string
		g, missing, err = create(l, testName(t), Limits{MemoryBytes: 64 << 20, Pids: 32, CPUMillis: 1000})
		if err != nil {
			t.Fatalf("create as pure v1: %v", err)
		}
		t.Cleanup(func() { removeOrFail(t, g) })
		if len(missing) > 0 || g.V2Path() != "" || g.ID() != 0 {
			t.Fatalf("pure v1 group: missing %v, v2 %q, id %d", missing, g.V2Path(), g.ID())
		}
		if _, ok := l.v1[ctrlFreezer]; ok && g.v1[ctrlFreezer] == "" {
			t.Fatal("pure v1 group has no freezer directory although the freezer is mounted")
		}
	}
	p := startShell(t, "sleep 1000 & sleep 1000 & sleep 1000 & wait")
	if err := g.Add(p.cmd.Process.Pid); err != nil {
		t.Fatalf("Add: %v", err)
	}
	p.open(t)
	waitProcs(t, g, 4)
	if err := g.sweep(true); err != nil {
		t.Fatalf("sweep: %v", err)
	}
	if ws := p.wait(t); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("shell ended with %v, want SIGKILL", ws)
	}
	if d := g.v1[ctrlFreezer]; d != "" {
		if s := readTrim(t, filepath.Join(d, "freezer.state")); s != "THAWED" {
			t.Errorf("freezer left %s", s)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	if err := g.Remove(ctx); err != nil {
		t.Fatalf("Remove: %v", err)
	}
}

// RemoveStale removes an empty jail older than minAge and leaves a young one
// and one holding a process.
func TestRemoveStale(t *testing.T) {
	mode := requireCgroups(t)
	empty := newGroup(t, Limits{})
	busy := newGroup(t, Limits{})
	p := startGated(t, nil, "sleep", "1000")
	if err := busy.Add(p.cmd.Process.Pid); err != nil {
		t.Fatalf("Add: %v", err)
	}
	l, err := discoverLayout(mode)
	if err != nil {
		t.Fatal(err)
	}
	ours := func(n string) bool {
		return n == filepath.Base(empty.Paths()[0]) || n == filepath.Base(busy.Paths()[0])
	}
	if removed, err := removeStale(l, time.Hour, ours); err != nil || len(removed) > 0 {
		t.Fatalf("removeStale(1h) = %v, %v; want nothing removed", removed, err)
	}
	removed, err := removeStale(l, 0, ours)
	if err != nil {
		t.Fatalf("removeStale: %v", err)
	}
	if !slices.Equal(slices.Sorted(slices.Values(removed)), slices.Sorted(slices.Values(empty.Paths()))) {
		t.Fatalf("removeStale removed %v, want %v", removed, empty.Paths())
	}
	for _, d := range busy.Paths() {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("removeStale removed a jail holding a process: %v", err)
		}
	}
}

// Enabling v2 controllers beneath the caller's own cgroup: a controller not
// delegated is reported, and so is the kernel's refusal (EBUSY) to enable one
// in a cgroup that holds processes. The second case needs a controller the
// host already delegates to the caller's cgroup (the pure v2 VM does; this
// hybrid host has none in v2), so it is asserted where one exists.
func TestEnableV2Controllers(t *testing.T) {
	mode := requireCgroups(t)
	if mode == ModeV1 {
		t.Log("pure v1 has no v2 controllers to enable")
		return
	}
	l, err := discoverLayout(mode)
	if err != nil {
		t.Fatal(err)
	}
	parent := filepath.Join(l.v2Own, parentName)
	if err := mkdirShared(parent); err != nil {
		t.Fatal(err)
	}
	top := filepath.Join(parent, testName(t))
	busy := filepath.Join(top, "busy")
	for _, d := range []string{top, busy} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	defer func() { _ = (&Group{v2: top}).Remove(context.Background()) }()
	p := startGated(t, nil, "sleep", "1000")
	if err := writeFile(filepath.Join(busy, "cgroup.procs"), strconv.Itoa(p.cmd.Process.Pid)); err != nil {
		t.Fatal(err)
	}

	enabled, missing := enableV2Controllers([]string{top}, []string{"nosuchctrl"})
	if len(enabled) != 0 || len(missing) != 1 || !strings.Contains(missing[0], "not delegated") {
		t.Fatalf("fake controller: enabled %v, missing %v", enabled, missing)
	}
	active, err := readFields(filepath.Join(l.v2Own, "cgroup.subtree_control"))
	if err != nil {
		t.Fatal(err)
	}
	if len(active) == 0 {
		t.Logf("no v2 controller is delegated to %s: EBUSY case not reachable here", l.v2Own)
		return
	}
	c := active[0]
	if enabled, missing := enableV2Controllers([]string{parent, top}, []string{c}); !slices.Equal(enabled, []string{c}) || len(missing) > 0 {
		t.Fatalf("enable %s in %s: enabled %v, missing %v", c, top, enabled, missing)
	}
	if got, _ := readFields(filepath.Join(top, "cgroup.subtree_control")); !slices.Contains(got, c) {
		t.Fatalf("%s/cgroup.subtree_control = %v, want %s", top, got, c)
	}
	enabled, missing = enableV2Controllers([]string{busy}, []string{c})
	if len(enabled) != 0 || len(missing) != 1 || !strings.Contains(missing[0], "holds processes") {
		t.Fatalf("enable %s in %s holding a process: enabled %v, missing %v", c, busy, enabled, missing)
	}
}
