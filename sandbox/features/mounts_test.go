package features

import (
	"reflect"
	"testing"
)

func TestParseMountInfo(t *testing.T) {
	for _, tc := range []struct {
		name string
		line string
		want Mount
	}{
		{
			name: "optional fields before the separator",
			line: "28 24 0:26 / /sys/fs/cgroup rw,nosuid shared:9 master:2 - cgroup2 cgroup2 rw,nsdelegate",
			want: Mount{Point: "/sys/fs/cgroup", Root: "/", FSType: "cgroup2", Source: "cgroup2",
				SuperOptions: []string{"rw", "nsdelegate"}},
		},
		{
			name: "no optional fields",
			line: "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
			want: Mount{Point: "/sys/fs/cgroup/memory", Root: "/", FSType: "cgroup", Source: "cgroup",
				SuperOptions: []string{"rw", "memory"}},
		},
		{
			name: "octal escapes in paths",
			line: `40 1 8:1 /data\040dir /mnt/my\040disk\011x rw - ext4 /dev/sd\134a rw`,
			want: Mount{Point: "/mnt/my disk\tx", Root: "/data dir", FSType: "ext4", Source: `/dev/sd\a`,
				SuperOptions: []string{"rw"}},
		},
		{
			name: "bind mount of a sub-tree",
			line: "600 500 0:30 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup rw",
			want: Mount{Point: "/sys/fs/cgroup", Root: "/docker/abc", FSType: "cgroup2", Source: "cgroup",
				SuperOptions: []string{"rw"}},
		},
		{
			name: "no super options",
			line: "22 27 0:21 / /proc rw - proc proc",
			want: Mount{Point: "/proc", Root: "/", FSType: "proc", Source: "proc"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mounts, err := ParseMountInfo([]byte(tc.line + "\n\n"))
			if err != nil {
				t.Fatal(err)
			}
			if len(mounts) != 1 || !reflect.DeepEqual(mounts[0], tc.want) {
				t.Fatalf("got %+v, want %+v", mounts, tc.want)
			}
		})
	}
}

func TestParseMountInfoErrors(t *testing.T) {
	for _, bad := range []string{
		"28 24 0:26 / /sys/fs/cgroup rw cgroup2 cgroup2 rw", // no separator
		"28 24 0:26 / /sys/fs/cgroup rw - cgroup2",          // fields missing after it
		"28 24 0:26 /", // truncated
		`28 24 0:26 / /mnt/a\04 rw - ext4 /dev/x rw`,          // truncated escape
		`28 24 0:26 / /mnt/a\9zz rw - ext4 /dev/x rw`,         // not octal
		"1 2 3:4 / /ok rw - ext4 /dev/x rw\nbroken line here", // one bad line spoils all
	} {
		if m, err := ParseMountInfo([]byte(bad)); err == nil {
			t.Errorf("ParseMountInfo(%q) = %+v, want an error", bad, m)
		}
	}
}

func FuzzParseMountInfo(f *testing.F) {
	f.Add([]byte(hybridMountinfo))
	f.Add([]byte(v1Mountinfo))
	f.Add([]byte(`40 1 8:1 /data\040dir /mnt/my\040disk rw shared:1 - ext4 /dev/sda rw`))
	f.Fuzz(func(t *testing.T, data []byte) {
		mounts, err := ParseMountInfo(data)
		if err != nil {
			return
		}
		for _, m := range mounts {
			if m.FSType == "" || m.Point == "" {
				t.Fatalf("accepted a mount without type or point: %+v", m)
			}
		}
	})
}
