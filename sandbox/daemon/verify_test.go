package daemon

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestChildOfAcceptsOnlyTheClientsInitTree: the attach moves a pidfd's
// process only when it is the child of the given parent (the client, then
// the client's child) and runs as the client's uid.
func TestChildOfAcceptsOnlyTheClientsInitTree(t *testing.T) {
	// The test is the client; sh its child, sleep its grandchild.
	cmd := exec.Command("/bin/sh", "-c", "sleep 30 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	child := cmd.Process.Pid
	grandchild := waitForChild(t, child)
	me := Peer{PID: os.Getpid(), UID: os.Getuid()}

	childFD, grandchildFD := pidfd(t, child), pidfd(t, grandchild)
	if pid, err := childOf(childFD, me.PID, me); err != nil || pid != child {
		t.Errorf("the client's child: pid %d, %v; want %d", pid, err, child)
	}
	if pid, err := childOf(grandchildFD, child, me); err != nil || pid != grandchild {
		t.Errorf("the child's child: pid %d, %v; want %d", pid, err, grandchild)
	}
	if _, err := childOf(grandchildFD, me.PID, me); err == nil || !strings.Contains(err.Error(), "not a child of pid") {
		t.Errorf("a grandchild passed as the client's child: %v, want a refusal", err)
	}
	if _, err := childOf(pidfd(t, os.Getppid()), me.PID, me); err == nil {
		t.Errorf("the client's parent passed as its child: accepted")
	}
	other := me
	other.UID = me.UID + 1
	if _, err := childOf(childFD, me.PID, other); err == nil || !strings.Contains(err.Error(), "does not run as the client's uid") {
		t.Errorf("a child of another uid: %v, want a refusal", err)
	}
}

// waitForChild returns the first child of pid, once it has one.
func waitForChild(t *testing.T, pid int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
		if err != nil {
			t.Fatal(err)
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			c, err := strconv.Atoi(f[0])
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("pid %d started no child", pid)
	return 0
}

func pidfd(t *testing.T, pid int) *os.File {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	t.Cleanup(func() { f.Close() })
	return f
}
