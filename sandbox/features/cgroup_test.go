package features

import (
	"slices"
	"strings"
	"testing"
)

// Samples of /proc/self/mountinfo and /proc/self/cgroup for each mode.
const (
	// This project's machine: v2 at /sys/fs/cgroup/unified, controllers in v1.
	hybridMountinfo = `22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	hybridCgroup = `9:name=systemd:/
8:pids:/
4:memory:/process_api/8123152c
2:cpuacct:/
1:cpu:/
0::/
`
	// A systemd distribution: only the unified hierarchy.
	v2Mountinfo = `24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
28 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
29 24 0:27 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:10 - bpf bpf rw,mode=700
`
	v2Cgroup = "0::/user.slice/user-1000.slice/session-2.scope\n"
	// An older distribution: v1 only, cpu and cpuacct co-mounted.
	v1Mountinfo = `25 18 0:21 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
26 25 0:22 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpuacct,cpu
30 25 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory
31 25 0:27 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,pids
`
	v1Cgroup = `11:pids:/user.slice
4:cpu,cpuacct:/user.slice
3:memory:/user.slice
1:name=systemd:/user.slice/user-1000.slice/session-1.scope
`
)

func TestParseCgroupInfoModes(t *testing.T) {
	for _, tc := range []struct {
		name         string
		mountinfo    string
		cgroup       string
		mode         CgroupMode
		v2Mount      string
		v2Self       string
		v1           map[string]string // controller -> mount
		v1Self       map[string]string // controller -> path
		noController []string
	}{
		{
			name: "hybrid", mountinfo: hybridMountinfo, cgroup: hybridCgroup, mode: CgroupHybrid,
			v2Mount: "/sys/fs/cgroup/unified", v2Self: "/",
			v1: map[string]string{"memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids",
				"cpu": "/sys/fs/cgroup/cpu", "cpuacct": "/sys/fs/cgroup/cpuacct", "name=systemd": "/sys/fs/cgroup/systemd"},
			v1Self:       map[string]string{"memory": "/process_api/8123152c", "pids": "/", "name=systemd": "/"},
			noController: []string{"cpuset", "blkio"},
		},
		{
			name: "pure v2", mountinfo: v2Mountinfo, cgroup: v2Cgroup, mode: CgroupV2,
			v2Mount: "/sys/fs/cgroup", v2Self: "/user.slice/user-1000.slice/session-2.scope",
			noController: []string{"memory", "pids", "cpu"},
		},
		{
			name: "v1 with co-mounted cpu,cpuacct", mountinfo: v1Mountinfo, cgroup: v1Cgroup, mode: CgroupV1,
			v1: map[string]string{"memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids",
				"cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct", "name=systemd": "/sys/fs/cgroup/systemd"},
			v1Self: map[string]string{"cpu": "/user.slice", "cpuacct": "/user.slice", "memory": "/user.slice",
				"name=systemd": "/user.slice/user-1000.slice/session-1.scope"},
		},
		{
			name: "v2 with a named v1 hierarchy only", mode: CgroupV2, v2Mount: "/sys/fs/cgroup", v2Self: "/a",
			mountinfo: v2Mountinfo + "50 28 0:40 / /run/systemd/legacy rw - cgroup cgroup rw,name=systemd\n",
			cgroup:    "1:name=systemd:/a\n0::/a\n",
			v1:        map[string]string{"name=systemd": "/run/systemd/legacy"},
			v1Self:    map[string]string{"name=systemd": "/a"},
		},
		{
			name: "none", mountinfo: "27 1 254:0 / / rw - ext4 /dev/vda rw\n", cgroup: "", mode: CgroupNone,
			noController: []string{"memory"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := ParseCgroupInfo([]byte(tc.mountinfo), []byte(tc.cgroup))
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode != tc.mode {
				t.Errorf("mode = %s, want %s", info.Mode, tc.mode)
			}
			switch {
			case tc.v2Mount == "" && info.V2 != nil:
				t.Errorf("v2 = %+v, want none", info.V2)
			case tc.v2Mount != "" && info.V2 == nil:
				t.Errorf("v2 missing, want %s", tc.v2Mount)
			case tc.v2Mount != "":
				if info.V2.Mount != tc.v2Mount || info.V2.Self != tc.v2Self {
					t.Errorf("v2 = %s self %s, want %s self %s", info.V2.Mount, info.V2.Self, tc.v2Mount, tc.v2Self)
				}
			}
			for ctrl, mount := range tc.v1 {
				h, ok := info.V1Hierarchy(ctrl)
				if !ok || h.Mount != mount {
					t.Errorf("v1 %s = %q (found %v), want %s", ctrl, h.Mount, ok, mount)
				}
				if ok && !strings.HasPrefix(ctrl, "name=") && info.ControllerHierarchy(ctrl) != "v1" {
					t.Errorf("ControllerHierarchy(%s) = %q, want v1", ctrl, info.ControllerHierarchy(ctrl))
				}
			}
			for ctrl, self := range tc.v1Self {
				if h, _ := info.V1Hierarchy(ctrl); h.Self != self {
					t.Errorf("own %s cgroup = %q, want %q", ctrl, h.Self, self)
				}
			}
			for _, ctrl := range tc.noController {
				if where := info.ControllerHierarchy(ctrl); where != "" {
					t.Errorf("ControllerHierarchy(%s) = %q, want none", ctrl, where)
				}
			}
		})
	}
}

func TestControllerHierarchyV2UsesCallersControllers(t *testing.T) {
	info, err := ParseCgroupInfo([]byte(v2Mountinfo), []byte(v2Cgroup))
	if err != nil {
		t.Fatal(err)
	}
	// The root offers cpu, but the caller's parent did not delegate it.
	info.V2.RootControllers = []string{"cpu", "memory", "pids"}
	info.V2.SelfControllers = []string{"memory", "pids"}
	for ctrl, want := range map[string]string{"memory": "v2", "pids": "v2", "cpu": ""} {
		if got := info.ControllerHierarchy(ctrl); got != want {
			t.Errorf("ControllerHierarchy(%s) = %q, want %q", ctrl, got, want)
		}
	}
}

func TestCgroupDir(t *testing.T) {
	for _, tc := range []struct {
		mount, root, self string
		want              string // "" means an error
	}{
		{"/sys/fs/cgroup", "/", "/", "/sys/fs/cgroup"},
		{"/sys/fs/cgroup", "/", "/user.slice/a.scope", "/sys/fs/cgroup/user.slice/a.scope"},
		// A container's bind mount of its own sub-tree (no cgroup namespace).
		{"/sys/fs/cgroup", "/docker/abc", "/docker/abc", "/sys/fs/cgroup"},
		{"/sys/fs/cgroup", "/docker/abc", "/docker/abc/sub", "/sys/fs/cgroup/sub"},
		{"/sys/fs/cgroup", "/docker/abc", "/docker/abcd", ""},
		{"/sys/fs/cgroup", "/docker/abc", "/other", ""},
		{"/sys/fs/cgroup", "/", "", ""},
	} {
		got, err := cgroupDir(tc.mount, tc.root, tc.self)
		if tc.want == "" {
			if err == nil {
				t.Errorf("cgroupDir(%s, %s, %s) = %s, want an error", tc.mount, tc.root, tc.self, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("cgroupDir(%s, %s, %s) = %q, %v; want %q", tc.mount, tc.root, tc.self, got, err, tc.want)
		}
	}
}

func TestParseProcCgroup(t *testing.T) {
	pc, err := ParseProcCgroup([]byte("4:cpu,cpuacct:/a:b\n1:name=systemd:/s\n0::/x\n"))
	if err != nil {
		t.Fatal(err)
	}
	if pc.V2 != "/x" || pc.V1["cpu,cpuacct"] != "/a:b" || pc.V1["name=systemd"] != "/s" {
		t.Fatalf("parsed %+v", pc)
	}
	for _, bad := range []string{"x\n", "a:memory:/\n", "1::/\n", "1:memory:relative\n", "-1:memory:/\n"} {
		if _, err := ParseProcCgroup([]byte(bad)); err == nil {
			t.Errorf("ParseProcCgroup(%q) succeeded, want an error", bad)
		}
	}
}

func TestParseCgroupInfoRejectsMalformedInput(t *testing.T) {
	if _, err := ParseCgroupInfo([]byte("41 31 0:38 / /sys/fs/cgroup/unified rw cgroup2 cgroup2 rw\n"), nil); err == nil {
		t.Error("mountinfo line without separator accepted")
	}
	if _, err := ParseCgroupInfo([]byte(hybridMountinfo), []byte("garbage\n")); err == nil {
		t.Error("malformed /proc/self/cgroup accepted")
	}
}

func FuzzParseCgroupInfo(f *testing.F) {
	f.Add([]byte(hybridMountinfo), []byte(hybridCgroup))
	f.Add([]byte(v2Mountinfo), []byte(v2Cgroup))
	f.Add([]byte(v1Mountinfo), []byte(v1Cgroup))
	f.Add([]byte(`1 2 3:4 /a\040b /m\134n rw - cgroup2 x\011y rw`), []byte("0::/a:b\n"))
	f.Fuzz(func(t *testing.T, mountinfo, cgroup []byte) {
		info, err := ParseCgroupInfo(mountinfo, cgroup)
		if err != nil {
			return
		}
		hasControllers := slices.ContainsFunc(info.V1, func(h CgroupV1Hierarchy) bool { return len(h.Controllers) > 0 })
		want := CgroupNone
		switch {
		case info.V2 != nil && hasControllers:
			want = CgroupHybrid
		case info.V2 != nil:
			want = CgroupV2
		case len(info.V1) > 0:
			want = CgroupV1
		}
		if info.Mode != want {
			t.Fatalf("mode %s inconsistent with hierarchies %+v %+v", info.Mode, info.V2, info.V1)
		}
	})
}
