package initstep

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func socketPair(t *testing.T) (ours *os.File, theirs int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours = os.NewFile(uintptr(fds[0]), "ours")
	t.Cleanup(func() { ours.Close() })
	return ours, fds[1]
}

// TestChildHandOver: the pidfd PID 1 sends is the one the launcher gets;
// a PID 1 that exits without sending one is an error, not a hang.
func TestChildHandOver(t *testing.T) {
	ours, theirs := socketPair(t)
	self, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := sendChild(theirs, self); err != nil {
		t.Fatal(err)
	}
	unix.Close(self)
	unix.Close(theirs)
	got, err := ReceiveChild(ours)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(int(got.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nPid:\t"+strconv.Itoa(os.Getpid())+"\n") {
		t.Errorf("received descriptor is not a pidfd of pid %d:\n%s", os.Getpid(), b)
	}

	ours, theirs = socketPair(t)
	unix.Close(theirs) // PID 1 exited first
	if f, err := ReceiveChild(ours); err == nil || !strings.Contains(err.Error(), "exited first") {
		t.Errorf("nothing sent: %v, %v; want an error", f, err)
	}
}
