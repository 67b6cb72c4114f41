package cgroup

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/cgroups/v3/cgroup2"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"filesystem-0a1b2c3d4e5f", true},
		{"my_profile.v2-1", true},
		{".hidden-1", true},
		{strings.Repeat("a", maxNameLen), true},
		{"", false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"../x", false},
		{"/abs", false},
		{"sp ace", false},
		{"nul\x00", false},
		{"new\nline", false},
		{"é", false},
		{strings.Repeat("a", maxNameLen+1), false},
	} {
		if err := validateName(tc.name); (err == nil) != tc.ok {
			t.Errorf("validateName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestCPUQuota(t *testing.T) {
	for _, tc := range []struct {
		millis, quota int64
		ok            bool
	}{
		{0, 0, true},
		{10, 1000, true},
		{500, 50000, true},
		{1000, 100000, true},
		{1500, 150000, true},
		{9, 0, false},
		{1, 0, false},
		{1 << 62, 0, false},
	} {
		q, err := cpuQuotaUS(tc.millis)
		if (err == nil) != tc.ok || q != tc.quota {
			t.Errorf("cpuQuotaUS(%d) = %d, %v; want %d, ok=%v", tc.millis, q, err, tc.quota, tc.ok)
		}
	}
}

func TestValidateLimits(t *testing.T) {
	for _, tc := range []struct {
		l  Limits
		ok bool
	}{
		{Limits{}, true},
		{Limits{MemoryBytes: 64 << 20, Pids: 32, CPUMillis: 250}, true},
		{Limits{MemoryBytes: -1}, false},
		{Limits{Pids: -1}, false},
		{Limits{CPUMillis: -1000}, false},
		{Limits{CPUMillis: 5}, false},
	} {
		if err := validateLimits(tc.l); (err == nil) != tc.ok {
			t.Errorf("validateLimits(%+v) = %v, want ok=%v", tc.l, err, tc.ok)
		}
	}
}

func TestUnifiedPath(t *testing.T) {
	for _, tc := range []struct {
		desc, in, want string
		ok             bool
	}{
		{"pure v2", "0::/user.slice/user-1000.slice/session-2.scope\n", "/user.slice/user-1000.slice/session-2.scope", true},
		{"v2 root", "0::/\n", "/", true},
		{"hybrid", "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/bbc3\n1:cpu:/\n0::/\n", "/", true},
		{"v1 only", "4:memory:/a\n1:cpu,cpuacct:/b\n", "", false},
		{"malformed", "garbage\n", "", false},
		{"empty", "", "", false},
	} {
		got, err := unifiedPath(strings.NewReader(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s: unifiedPath = %q, %v; want %q, ok=%v", tc.desc, got, err, tc.want, tc.ok)
		}
	}
}

func TestOwnDir(t *testing.T) {
	mount := t.TempDir()
	if err := os.MkdirAll(filepath.Join(mount, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mount, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		own, want string
		ok        bool
	}{
		{"/", mount, true},
		{"/a/b", filepath.Join(mount, "a", "b"), true},
		{"/../..", "", false}, // a foreign cgroup namespace: never resolved outside the mount
		{"/a/../a", "", false},
		{"a/b", "", false},
		{"", "", false},
		{"/missing", "", false},
		{"/file", "", false},
	} {
		got, err := ownDir(mount, tc.own)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ownDir(%q) = %q, %v; want %q, ok=%v", tc.own, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseKeyed(t *testing.T) {
	v1 := "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"
	v2 := "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n"
	for _, tc := range []struct {
		in, key string
		want    uint64
		ok      bool
	}{
		{v1, "oom_kill", 3, true},
		{v1, "under_oom", 0, true},
		{v2, "oom_kill", 2, true},
		{v2, "oom", 2, true}, // not confused with oom_kill or oom_group_kill
		{v2, "max", 12, true},
		{v2, "missing", 0, false},
		{"oom_kill x\n", "oom_kill", 0, false},
		{"oom_kill -1\n", "oom_kill", 0, false},
		{"", "oom_kill", 0, false},
	} {
		got, err := parseKeyed(strings.NewReader(tc.in), tc.key)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseKeyed(%q, %q) = %d, %v; want %d, ok=%v", tc.in, tc.key, got, err, tc.want, tc.ok)
		}
	}
}

func TestParsePids(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		ok   bool
	}{
		{"", nil, true},
		{"1\n22\n333\n", []int{1, 22, 333}, true},
		{"\n7\n\n", []int{7}, true},
		{"12a\n", nil, false},
		{"0\n", nil, false},
		{"-5\n", nil, false},
	} {
		got, err := parsePids(strings.NewReader(tc.in))
		if (err == nil) != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("parsePids(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestValidateSpec(t *testing.T) {
	const v2 = "/sys/fs/cgroup/unified/mcpjail/fs-0a1b"
	v1 := map[string]string{
		"memory": "/sys/fs/cgroup/memory/process_api/x/mcpjail/fs-0a1b",
		"pids":   "/sys/fs/cgroup/pids/mcpjail/fs-0a1b",
	}
	for _, tc := range []struct {
		desc string
		s    Spec
		ok   bool
	}{
		{"hybrid", Spec{Mode: ModeHybrid, V2: v2, V1: v1}, true},
		{"v2", Spec{Mode: ModeV2, V2: "/sys/fs/cgroup/system.slice/mcpjail.service/mcpjail/fs-0a1b"}, true},
		{"v1", Spec{Mode: ModeV1, V1: v1}, true},
		{"unknown mode", Spec{Mode: "v3", V2: v2}, false},
		{"empty", Spec{Mode: ModeV1}, false},
		{"v1 with v2 dir", Spec{Mode: ModeV1, V2: v2, V1: v1}, false},
		{"hybrid without v2 dir", Spec{Mode: ModeHybrid, V1: v1}, false},
		{"v2 with v1 dirs", Spec{Mode: ModeV2, V2: v2, V1: v1}, false},
		{"relative", Spec{Mode: ModeV2, V2: "sys/fs/cgroup/mcpjail/x"}, false},
		{"unclean", Spec{Mode: ModeV2, V2: "/sys/fs/cgroup/mcpjail/x/../../etc"}, false},
		{"not in mcpjail parent", Spec{Mode: ModeV2, V2: "/sys/fs/cgroup/system.slice"}, false},
		{"cgroup root", Spec{Mode: ModeV2, V2: "/sys/fs/cgroup"}, false},
		{"parent itself", Spec{Mode: ModeV2, V2: "/sys/fs/cgroup/mcpjail"}, false},
		{"bad name", Spec{Mode: ModeV2, V2: "/sys/fs/cgroup/mcpjail/.."}, false},
		{"names differ", Spec{Mode: ModeHybrid, V2: v2, V1: map[string]string{"pids": "/sys/fs/cgroup/pids/mcpjail/other"}}, false},
		{"unknown controller", Spec{Mode: ModeV1, V1: map[string]string{"devices": "/sys/fs/cgroup/devices/mcpjail/fs-0a1b"}}, false},
	} {
		if err := validateSpec(tc.s); (err == nil) != tc.ok {
			t.Errorf("%s: validateSpec = %v, want ok=%v", tc.desc, err, tc.ok)
		}
	}
}

// FromSpec must refuse directories that are not on a cgroup filesystem even
// when their shape is right, and the refused group must do nothing.
func TestFromSpecRefusesNonCgroupFS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), parentName, "fs-1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g := FromSpec(Spec{Mode: ModeV2, V2: dir})
	if err := g.Remove(t.Context()); err == nil {
		t.Fatal("Remove of a group on a non-cgroup filesystem succeeded")
	}
	if err := g.Kill(); err == nil {
		t.Fatal("Kill of a refused group succeeded")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("refused group touched %s: %v", dir, err)
	}
}

func TestResources(t *testing.T) {
	l := Limits{MemoryBytes: 64 << 20, Pids: 16, CPUMillis: 1500}
	r1, err := v1Resources(ctrlMemory, l, true)
	if err != nil || *r1.Memory.Limit != 64<<20 || *r1.Memory.Swap != 64<<20 {
		t.Errorf("v1 memory = %+v, %v", r1.Memory, err)
	}
	if r1, _ = v1Resources(ctrlMemory, l, false); r1.Memory.Swap != nil {
		t.Errorf("v1 memory without swap accounting sets memsw")
	}
	if r1, err = v1Resources(ctrlCPU, l, false); err != nil || *r1.CPU.Quota != 150000 || *r1.CPU.Period != 100000 {
		t.Errorf("v1 cpu = %+v, %v", r1.CPU, err)
	}
	if r1, err = v1Resources(ctrlPids, l, false); err != nil || *r1.Pids.Limit != 16 {
		t.Errorf("v1 pids = %+v, %v", r1.Pids, err)
	}
	r2, err := v2Resources(ctrlCPU, l, false)
	if err != nil || r2.CPU.Max != cgroup2.CPUMax("150000 100000") {
		t.Errorf("v2 cpu.max = %q, %v", r2.CPU.Max, err)
	}
	if r2, err = v2Resources(ctrlMemory, l, true); err != nil || *r2.Memory.Max != 64<<20 || *r2.Memory.Swap != 0 {
		t.Errorf("v2 memory = %+v, %v", r2.Memory, err)
	}
	if r2, err = v2Resources(ctrlPids, l, false); err != nil || r2.Pids.Max != 16 {
		t.Errorf("v2 pids = %+v, %v", r2.Pids, err)
	}
	if _, err := v2Resources(ctrlFreezer, l, false); err == nil {
		t.Error("v2Resources accepted the freezer")
	}
}

// FuzzValidateSpec: a spec arrives at the cleanup guard through a pipe. Any
// spec it accepts addresses only "…/mcpjail/<valid name>" directories.
func FuzzValidateSpec(f *testing.F) {
	f.Add("hybrid", "/sys/fs/cgroup/unified/mcpjail/a", "memory", "/sys/fs/cgroup/memory/mcpjail/a")
	f.Add("v2", "/sys/fs/cgroup/mcpjail/../../etc", "", "")
	f.Add("v1", "", "pids", "/x/mcpjail/b")
	f.Fuzz(func(t *testing.T, mode, v2, ctrl, v1dir string) {
		s := Spec{Mode: Mode(mode), V2: v2}
		if ctrl != "" {
			s.V1 = map[string]string{ctrl: v1dir}
		}
		if validateSpec(s) != nil {
			return
		}
		for _, d := range specPaths(s) {
			if filepath.Clean(d) != d || !filepath.IsAbs(d) ||
				filepath.Base(filepath.Dir(d)) != parentName || validateName(filepath.Base(d)) != nil {
				t.Fatalf("accepted spec %+v addresses %q", s, d)
			}
		}
	})
}

// specPaths lists a spec's directories the way a Group would.
func specPaths(s Spec) []string {
	g := &Group{v2: s.V2, v1: s.V1}
	return g.Paths()
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"a", ".", "..", "a/b", "fs-0a1b2c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if validateName(name) != nil {
			return
		}
		if strings.ContainsAny(name, "/\x00") || name == "." || name == ".." || filepath.Base(name) != name {
			t.Fatalf("accepted %q", name)
		}
	})
}
