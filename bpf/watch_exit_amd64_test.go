package bpf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// legacyOpen makes the open(2) and creat(2) steps with raw syscalls.
func legacyOpen(s watchStep) (handled bool, err error) {
	p, err := unix.BytePtrFromString(s.Path)
	if err != nil {
		return true, err
	}
	var fd uintptr
	var errno unix.Errno
	switch s.Op {
	case "open(2)":
		fd, _, errno = unix.Syscall(unix.SYS_OPEN, uintptr(unsafe.Pointer(p)), uintptr(s.Flags), 0o600)
	case "creat(2)":
		fd, _, errno = unix.Syscall(unix.SYS_CREAT, uintptr(unsafe.Pointer(p)), 0o600, 0)
	default:
		return false, nil
	}
	if errno != 0 {
		return true, errno
	}
	unix.Close(int(fd))
	return true, nil
}

// TestLegacyOpenRefused checks open(2) and creat(2), whose path is their
// first argument (x86_64 has them; arm64 does not).
func TestLegacyOpenRefused(t *testing.T) {
	requireKernel(t)
	requireLandlock(t)
	secret := t.TempDir()
	l := newLoader(t)
	events := collect(l)
	grp := registerJail(t, l, loopbackPolicy(1))
	req := watchRequest{Confine: confinedPolicy(nil, nil)}
	for _, s := range legacyOpenSteps {
		path := filepath.Join(secret, s.op)
		if s.exists {
			if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		req.Steps = append(req.Steps, watchStep{Op: s.op, Path: path, Flags: s.flags})
	}
	run := runWatchHelper(t, grp, req)
	if want := strings.Repeat("EACCES ", len(legacyOpenSteps)); fmt.Sprint(run.results) != "["+strings.TrimSpace(want)+"]" {
		t.Fatalf("results %v (signal %v), want EACCES for each", run.results, run.signal)
	}
	for _, s := range legacyOpenSteps {
		path := filepath.Join(secret, s.op)
		ev := events.wait(t, string(audit.KindOpen), path, run.pid)
		if ev.Verdict != audit.VerdictDeny || ev.Layer != audit.LayerLandlock || ev.Errno != unix.EACCES ||
			ev.DirFD != unix.AT_FDCWD || ev.Flags&^unix.O_LARGEFILE != s.wantFlags ||
			!strings.HasPrefix(ev.Reason, s.syscall+" refused") {
			t.Errorf("event %+v: want a Landlock deny of %s by %s, flags %s", ev, path, s.syscall, OpenFlagsText(s.wantFlags))
		}
	}
}

// legacyOpenSteps are the helper steps of open(2) and creat(2) and what
// their events must say.
var legacyOpenSteps = []struct {
	op        string // watchStep.Op
	flags     int    // watchStep.Flags
	exists    bool   // the file exists (Landlock checks an open without O_CREAT on the file)
	syscall   string // syscall name in the event's reason
	wantFlags uint64
}{
	{op: "open(2)", flags: unix.O_RDWR | unix.O_APPEND, exists: true, syscall: "open", wantFlags: unix.O_RDWR | unix.O_APPEND},
	{op: "creat(2)", syscall: "creat", wantFlags: unix.O_CREAT | unix.O_WRONLY | unix.O_TRUNC},
}
