package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/mcpjail/mcpjail/sandbox/features"
	"github.com/mcpjail/mcpjail/sandbox/features/confinement"
)

// doctorHostReport resembles this project's machine (see DESIGN.md).
func doctorHostReport(t *testing.T) features.Report {
	t.Helper()
	cg, err := features.ParseCgroupInfo([]byte(`32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
`), []byte("8:pids:/\n4:memory:/a\n1:cpu:/\n0::/\n"))
	if err != nil {
		t.Fatal(err)
	}
	cg.LibraryMode = features.CgroupHybrid
	fs, net, scopes, _ := confinement.LandlockRights(7)
	r := features.Report{
		Kernel: "6.18.44",
		Privileges: confinement.Privileges{Root: true, Capabilities: confinement.CapabilitiesFromMask(0x1fffeffffff),
			CapEff: "000001fffeffffff"},
		Landlock: confinement.LandlockInfo{Status: confinement.LandlockEnabled, ABI: 7, UsableABI: 7,
			FS: fs, Net: net, Scopes: scopes},
		Cgroup:   cg,
		BTF:      true,
		Security: features.SecurityInfo{Lockdown: features.LockdownUnknown, LockdownNote: "securityfs not mounted", LSMNote: "securityfs not mounted"},
	}
	for _, name := range features.EnforcementProbes() {
		r.BPF = append(r.BPF, features.ProbeResult{Name: name, OK: true})
	}
	r.BPF = append(r.BPF, features.ProbeResult{Name: features.ProbeLSM, Stage: features.StageLoad, Error: "operation not permitted"})
	return r
}

func TestDoctorTextOneLinePerItem(t *testing.T) {
	var out bytes.Buffer
	writeDoctorText(&out, doctorHostReport(t))
	text := out.String()
	for _, want := range []string{
		"\nroot: yes (euid 0; CAP_BPF CAP_SYS_ADMIN CAP_NET_ADMIN CAP_PERFMON; lacking CAP_SYS_RESOURCE)\n",
		"\nlandlock: ABI 7 (fs: execute write_file",
		" truncate ioctl_dev, net: bind_tcp connect_tcp, scope: abstract_unix_socket signal)\n",
		"\ncgroup: hybrid (v2 /sys/fs/cgroup/unified, v1 cpu=/sys/fs/cgroup/cpu memory=/sys/fs/cgroup/memory pids=/sys/fs/cgroup/pids)\n",
		"\ncgroup controllers: memory=v1 pids=v1 cpu=v1\n",
		"\nbpffs: not mounted at /sys/fs/bpf (run and daemon mount it when needed)\n",
		"\nlockdown: unknown (securityfs not mounted)\n",
		"\nbpf cgroup/connect4: ok\n",
		"\nbpf lsm/file_open: unavailable (load: operation not permitted)\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "\n\n") || strings.Contains(text, "warning") {
		t.Errorf("unexpected blank or warning line:\n%s", text)
	}
}

func TestDoctorDefaultNeeds(t *testing.T) {
	r := doctorHostReport(t)
	if missing := r.Missing(defaultProfileNeeds()); len(missing) > 0 {
		t.Fatalf("host-like report misses %v", missing)
	}
	// A Debian 6.1-like kernel: Landlock ABI 2, no connect_unix hook.
	fs, _, _, _ := confinement.LandlockRights(2)
	r.Landlock = confinement.LandlockInfo{Status: confinement.LandlockEnabled, ABI: 2, UsableABI: 2, FS: fs}
	i := slices.IndexFunc(r.BPF, func(p features.ProbeResult) bool { return p.Name == features.ProbeConnectUnix })
	r.BPF[i] = features.ProbeResult{Name: features.ProbeConnectUnix, Stage: features.StageLoad, Error: "invalid argument"}
	want := []string{
		"landlock ABI 6 (kernel has ABI 2)",
		"landlock TCP bind/connect rules (ABI 4, kernel has ABI 2)",
		"bpf cgroup/connect_unix (load: invalid argument)",
	}
	if got := r.Missing(defaultProfileNeeds()); !slices.Equal(got, want) {
		t.Fatalf("Missing = %q, want %q", got, want)
	}
}
