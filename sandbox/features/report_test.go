package features

import (
	"fmt"
	"slices"
	"testing"

	"github.com/mcpjail/mcpjail/sandbox/features/confinement"
	"golang.org/x/sys/unix"
)

// hostLikeReport resembles this project's machine: Landlock ABI 7, hybrid
// cgroups, every enforcement probe fine, BPF-LSM refused.
func hostLikeReport(t *testing.T) Report {
	t.Helper()
	cg, err := ParseCgroupInfo([]byte(hybridMountinfo), []byte(hybridCgroup))
	if err != nil {
		t.Fatal(err)
	}
	r := Report{Landlock: confinement.LandlockInfoFrom(7, confinement.LandlockErrataSignalScope, 0), Cgroup: cg}
	for _, name := range EnforcementProbes() {
		r.BPF = append(r.BPF, ProbeResult{Name: name, OK: true})
	}
	r.BPF = append(r.BPF, ProbeResult{Name: ProbeLSM, Stage: StageLoad, Error: "operation not permitted"})
	return r
}

func TestMissing(t *testing.T) {
	full := Needs{Landlock: true, LandlockABI: 6, LandlockNet: true, Cgroups: true,
		Controllers: []string{"memory", "pids", "cpu"}, BPFProbes: EnforcementProbes()}
	for _, tc := range []struct {
		name  string
		edit  func(*Report)
		needs Needs
		want  []string
	}{
		{name: "all present", needs: full},
		{name: "nothing needed", edit: func(r *Report) { *r = Report{} }},
		{
			name: "landlock absent", needs: full,
			edit: func(r *Report) { r.Landlock = confinement.LandlockInfoFrom(0, 0, unix.ENOSYS) },
			want: []string{"landlock (not enabled in this kernel)"},
		},
		{
			name: "old landlock", needs: full,
			edit: func(r *Report) { r.Landlock = confinement.LandlockInfoFrom(2, 0, 0) },
			want: []string{"landlock ABI 6 (kernel has ABI 2)", "landlock TCP bind/connect rules (ABI 4, kernel has ABI 2)"},
		},
		{
			name: "signal erratum unfixed", needs: full,
			edit: func(r *Report) { r.Landlock = confinement.LandlockInfoFrom(6, 0, 0) },
			want: []string{"landlock ABI 6 (kernel has ABI 6, usable as 5 (signal scoping erratum not fixed))"},
		},
		{
			name: "controller missing", needs: Needs{Controllers: []string{"memory", "pids", "rdma"}},
			want: []string{"cgroup controller rdma"},
		},
		{
			name: "no cgroups", needs: full,
			edit: func(r *Report) { r.Cgroup = CgroupInfo{Mode: CgroupNone} },
			want: []string{"cgroups (no cgroup hierarchy mounted)"},
		},
		{
			name: "cgroup probe failed", needs: Needs{Cgroups: true},
			edit: func(r *Report) { r.CgroupError = "read /sys/fs/cgroup/cgroup.controllers: permission denied" },
			want: []string{"cgroups (read /sys/fs/cgroup/cgroup.controllers: permission denied)"},
		},
		{
			name: "bpf probe failed or absent", needs: Needs{BPFProbes: []string{ProbeConnect4, ProbeLSM, "cgroup/nope"}},
			want: []string{"bpf lsm/file_open (load: operation not permitted)", "bpf cgroup/nope (not probed)"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := hostLikeReport(t)
			if tc.edit != nil {
				tc.edit(&r)
			}
			if got := r.Missing(tc.needs); !slices.Equal(got, tc.want) {
				t.Fatalf("Missing = %q\nwant      %q", got, tc.want)
			}
		})
	}
}

func TestShortError(t *testing.T) {
	for err, want := range map[error]string{
		fmt.Errorf("load program: %w", unix.EPERM):                "operation not permitted",
		fmt.Errorf("attach: %w", fmt.Errorf("x: %w", unix.EBADF)): "bad file descriptor",
		fmt.Errorf("no errno here"):                               "no errno here",
	} {
		if got := shortError(err); got != want {
			t.Errorf("shortError(%v) = %q, want %q", err, got, want)
		}
	}
}
