package bpf

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/cgroup"
)

// envOpenProbe makes the test binary a helper that opens files the way a
// jailed server's thread does: on one thread with no_new_privs set (the LSM
// programs judge only such tasks). See openProbe.
const envOpenProbe = "MCPJAIL_BPF_TEST_OPEN_PROBE"

type openProbe struct {
	Paths []string `json:"paths"` // each opened once; the result is its errno name or "ok"
	Loop  string   `json:"loop"`  // then opened and closed Count times, timed
	Count int      `json:"count"`
}

type openProbeResult struct {
	Results []string `json:"results"`
	Nanos   int64    `json:"nanos"`
}

func runOpenProbe(spec string) int {
	var p openProbe
	if err := json.Unmarshal([]byte(spec), &p); err != nil {
		fmt.Fprintln(os.Stderr, "open probe:", err)
		return 2
	}
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "open probe: no_new_privs:", err)
		return 2
	}
	var r openProbeResult
	for _, path := range p.Paths {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		r.Results = append(r.Results, errnoName(err))
	}
	if p.Count > 0 {
		var t0, t1 unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &t0)
		for range p.Count {
			fd, err := unix.Open(p.Loop, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				fmt.Fprintln(os.Stderr, "open probe: loop:", err)
				return 2
			}
			unix.Close(fd)
		}
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &t1)
		r.Nanos = t1.Nano() - t0.Nano()
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		return 2
	}
	return 0
}

// probeOpens runs an open probe in a child born in grp (nil: the test's own
// cgroup, outside every jail).
func probeOpens(t testing.TB, grp *cgroup.Group, p openProbe) openProbeResult {
	t.Helper()
	_, out, err, _ := helperRunIn(t, grp, envOpenProbe, p)
	if err != nil {
		t.Fatalf("open probe: %v (output %q)", err, out.String())
	}
	var r openProbeResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("open probe output %q: %v", out.String(), err)
	}
	return r
}
