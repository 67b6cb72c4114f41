package confinement

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// These tests check the privilege and seccomp probes against what the kernel
// says through another door: /proc/thread-self/status and prctl.

func TestParseLastCap(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"40\n", 40, false},
		{"0", 0, false},
		{"63\n", 63, false},
		{"64\n", 0, true}, // beyond a 64-bit mask
		{"-1\n", 0, true},
		{"", 0, true},
		{"4O\n", 0, true},
	} {
		got, err := parseLastCap([]byte(tc.in))
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseLastCap(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestKernelCapabilitiesMatchStatus(t *testing.T) {
	// capget and thread-self must look at the same thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sets, err := ThreadCapabilities()
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		t.Fatal(err)
	}
	fromStatus, err := ParseCapEff(string(status))
	if err != nil {
		t.Fatal(err)
	}
	if sets.Effective != fromStatus {
		t.Fatalf("capget effective %#x, status CapEff %#x", sets.Effective, fromStatus)
	}
	if sets.Effective&^sets.Permitted != 0 {
		t.Errorf("effective %#x is not within permitted %#x", sets.Effective, sets.Permitted)
	}
	eff, err := EffectiveCaps()
	if err != nil || eff != sets.Effective {
		t.Errorf("EffectiveCaps = %#x, %v; capget says %#x", eff, err, sets.Effective)
	}
	if p := ProbePrivileges(); p.Error != "" || p.CapEff != statusField(string(status), "CapEff") {
		t.Errorf("ProbePrivileges CapEff %q (error %q), status says %q", p.CapEff, p.Error, statusField(string(status), "CapEff"))
	}
}

func TestKernelLastCapMatchesBoundingSet(t *testing.T) {
	last, err := LastCap()
	if err != nil {
		t.Fatal(err)
	}
	// PR_CAPBSET_READ knows exactly the capabilities up to cap_last_cap.
	if _, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(last), 0, 0, 0); err != nil {
		t.Errorf("PR_CAPBSET_READ(%d) = %v, want it known", last, err)
	}
	if _, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(last+1), 0, 0, 0); !errors.Is(err, unix.EINVAL) {
		t.Errorf("PR_CAPBSET_READ(%d) = %v, want EINVAL past cap_last_cap", last+1, err)
	}
	if expectHost() && last != 40 {
		t.Errorf("host has cap_last_cap 40, probe says %d", last)
	}
}

func TestKernelSeccompAvailable(t *testing.T) {
	modeBefore, errBefore := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
	available, err := SeccompAvailable()
	if err != nil {
		t.Fatal(err)
	}
	// /proc shows Seccomp_filters only on kernels with CONFIG_SECCOMP_FILTER.
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	if hasFilters := statusField(string(status), "Seccomp_filters") != ""; available != hasFilters {
		t.Errorf("probe says filters available %v, status has Seccomp_filters %v", available, hasFilters)
	}
	if expectHost() && !available {
		t.Error("host has seccomp filters, probe says none")
	}
	// The probe installed nothing.
	if mode, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0); mode != modeBefore || !errors.Is(err, errBefore) {
		t.Errorf("seccomp mode %d (%v) after the probe, %d (%v) before", mode, err, modeBefore, errBefore)
	}
}

// statusField returns the value of "name:" in a /proc status file, "" when absent.
func statusField(status, name string) string {
	for _, line := range strings.Split(status, "\n") {
		if value, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(value)
		}
	}
	return ""
}

// TestKernelSeccompListener: kernels from 5.7 on hand out a listener with
// TSYNC; the probe must say so here and must install nothing.
func TestKernelSeccompListener(t *testing.T) {
	modeBefore, errBefore := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
	ok, why, err := SeccompListener()
	if err != nil {
		t.Fatal(err)
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	var major, minor int
	fmt.Sscanf(unix.ByteSliceToString(uts.Release[:]), "%d.%d", &major, &minor)
	if recent := major > 5 || major == 5 && minor >= 7; recent && !ok {
		t.Errorf("Linux %d.%d: probe says no seccomp listener: %s", major, minor, why)
	}
	if ok != (why == "") {
		t.Errorf("probe says available %v with reason %q", ok, why)
	}
	if mode, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0); mode != modeBefore || !errors.Is(err, errBefore) {
		t.Errorf("seccomp mode %d (%v) after the probe, %d (%v) before", mode, err, modeBefore, errBefore)
	}
}
